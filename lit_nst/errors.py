"""The one error type for user mistakes: `cli.main` prints it as a single line and exits non-zero."""


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and how to fix it."""


class DivergedError(UsageError):
    """The objective became NaN or infinite: the settings make the optimisation unstable."""
