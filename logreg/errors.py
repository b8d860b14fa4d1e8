"""The project's one error type for bad user input, and a helper to quote other errors."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class LogregError(ValueError):
    """Raised for invalid user input: a bad parameter, file, column or device.

    The CLI turns it into one line on stderr and exit status 2. Anything else
    that escapes is a bug and keeps its traceback.
    """
