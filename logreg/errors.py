"""The project's one error type for bad user input, its warning, and helpers that keep messages short."""

# A message quotes at most this many names of a list, and at most this many characters of
# anything the user gave (a line of a file, another library's error): a 50 MB one-line file
# must not become a 50 MB error line.
MAX_NAMES = 5
MAX_QUOTE = 200


def first_line(exc: BaseException, limit: int = MAX_QUOTE) -> str:
    """The first line of an exception's message (its type name when empty), cut at `limit` chars."""
    lines = str(exc).strip().splitlines()
    return clip(lines[0] if lines else type(exc).__name__, limit)


def clip(text: str, limit: int = MAX_QUOTE) -> str:
    """`text` cut at `limit` characters, with '...' where it was cut."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote_names(names, limit: int = MAX_NAMES) -> str:
    """'a, b, c' or, for a long list, the first `limit` then 'and N more' (each name clipped)."""
    names = [clip(str(n), 60) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


class LogregError(ValueError):
    """Raised for invalid user input: a bad parameter, file, column or device.

    The CLI turns it into one line on stderr and exit status 2. Anything else
    that escapes is a bug and keeps its traceback.
    """


class LogregWarning(UserWarning):
    """Something the user asked for was adjusted or will take very long; the CLI prints one line."""
