"""The one error type for user mistakes: `cli.main` prints it as a single line and exits non-zero."""

import errno
from pathlib import Path


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and how to fix it."""


class DivergedError(UsageError):
    """The objective became NaN or infinite: the settings make the optimisation unstable."""


class WriteError(UsageError):
    """A file could not be written (a full disk, a quota, a read-only folder): the file before it is left whole.

    The line says what to do by the cause; where the run has a checkpoint, the checkpoint callback adds what it
    still holds and how to go on (`then`), whichever write failed.
    """

    def __init__(self, path: Path, reason: OSError) -> None:
        super().__init__(path, reason)
        self.path, self.reason = path, reason
        self.then = "run again"

    def __str__(self) -> str:
        room = self.reason.errno in (errno.ENOSPC, errno.EDQUOT)
        fix = "make room" if room else "choose a folder you can write to"
        return f"could not write {self.path}: {self.reason.strerror or self.reason}; {fix}, then {self.then}"


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind an error, if any: torch reports a full disk as a RuntimeError raised while handling one."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None
