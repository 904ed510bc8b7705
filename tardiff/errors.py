"""The one exception type for user errors.

Anything a user can fix (a missing file, a malformed record, a bad parameter) raises
:class:`TardiffError` with a one-line message saying what is wrong and what to do. The CLI
prints that line and exits non-zero instead of showing a traceback; programming errors keep
their ordinary exception types and tracebacks.
"""


class TardiffError(Exception):
    """A user-facing error with a one-line, actionable message."""


class DataError(TardiffError, ValueError):
    """Input data is missing, malformed or unsuitable for the requested task."""


class ParameterError(TardiffError, ValueError):
    """A parameter has an invalid value."""


class DataWarning(UserWarning):
    """Input data had something the loader skipped (e.g. unknown parameter names); it says what and how often."""
