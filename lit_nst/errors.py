"""The one error type for user mistakes: `cli.main` prints it as a single line and exits non-zero."""


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and how to fix it."""


class DivergedError(UsageError):
    """The objective became NaN or infinite: the settings make the optimisation unstable."""


class WriteError(UsageError):
    """A file could not be written (a full disk, a read-only folder, a quota): the file before it is left whole."""


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind an error, if any: torch reports a full disk as a RuntimeError raised while handling one."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
