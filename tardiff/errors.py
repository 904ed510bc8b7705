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


def one_line_errors_in_notebooks() -> bool:
    """In IPython or Jupyter, show a :class:`TardiffError` as one line, as the CLI does; elsewhere do nothing.

    The error still fails the cell (papermill stops and reports it); only the traceback of
    frames inside the package, which a user cannot act on, is left out. Returns whether a
    handler was installed.

    Examples
    --------
    >>> one_line_errors_in_notebooks()  # outside IPython: nothing to do
    False
    """
    try:
        from IPython import get_ipython
    except ImportError:  # IPython not installed: not in a notebook
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def handler(shell, etype, value, tb, tb_offset=None):
        message = f"{etype.__name__}: {value}"
        shell._showtraceback(etype, value, [message])  # an error output whose traceback is the one line
        return [message]

    shell.set_custom_exc((TardiffError,), handler)
    return True
