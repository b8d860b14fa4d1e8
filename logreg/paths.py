"""Paths the user names: read only regular files, write only over regular files, whole or not at all.

Every file logreg writes (a model, a plot, a summary, a report) goes to a temporary file beside
its target and is renamed over it, so a crash or a full disk never leaves half a file. A rename
replaces whatever node is at the target: a FIFO, a device, a symlink. So an existing target
must be a regular file (through a symlink: the file it points to, which is then what is
replaced); anything else is refused before any work is spent.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from logreg.errors import LogregError


def node_kind(path: str | Path) -> str:
    """'a regular file', 'a directory', 'a FIFO', ... of what `path` points to ('nothing')."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "nothing" if not os.path.islink(path) else "a broken symlink"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def check_input_file(path: str | Path, flag: str, fix: str) -> Path:
    """An existing regular file to read; else one line naming what is there and `fix`."""
    path = Path(path)
    kind = node_kind(path)
    if kind == "nothing":
        raise LogregError(f"File '{path}' not found. {fix}")
    if kind != "a regular file":
        raise LogregError(f"{flag} '{path}' is {kind}, not a regular file. {fix}")
    return path


def check_output_file(path: str | Path, flag: str, example: str) -> Path:
    """The real path a file will be written to: refused when something other than a regular
    file is there, or its folder is missing. `example` is a file name to suggest."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    kind = node_kind(real)
    if kind == "a directory":
        raise LogregError(f"{flag} '{path}' is a directory. Pass a file name, e.g. {example}.")
    if kind not in ("nothing", "a regular file"):
        raise LogregError(
            f"{flag} '{path}' is {kind}, not a regular file: writing would replace it. "
            f"Pass the path of a regular file, e.g. {example}."
        )
    if not real.parent.is_dir():
        raise LogregError(
            f"The folder '{path.parent}' does not exist. Create it or pass another path to {flag}."
        )
    return real


def check_output_dir(path: str | Path, flag: str, create: bool = True) -> Path:
    """A folder to write into (created now unless `create` is False); refused when a file or
    another node is there or in the way."""
    path = Path(path)
    kind = node_kind(path)
    if kind not in ("nothing", "a directory"):
        raise LogregError(
            f"{flag} '{path}' is {kind}, not a folder. Pass a folder path (it is created if missing)."
        )
    above = next((p for p in Path(os.path.abspath(path)).parents if os.path.lexists(p)), None)
    if kind == "nothing" and above is not None and not above.is_dir():
        raise LogregError(
            f"{flag} '{path}' cannot be created: '{above}' is {node_kind(above)}. Pass another path."
        )
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LogregError(
                f"Cannot create the folder {flag} '{path}': {exc.strerror}. Pass another path."
            ) from None
    return path


def write_atomic(
    path: str | Path, write: Callable[[object], None], flag: str = "", example: str = ""
) -> Path:
    """Write a file whole: `write(binary_file)` into a temporary file beside it, then rename.

    On any error the previous file (if any) is left as it was; an OSError (a full disk, a
    read-only folder) becomes one line naming the path.
    """
    real = check_output_file(path, flag or "The path", example or Path(path).name)
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, real)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """write_atomic for text (UTF-8)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _write_error(path, exc: OSError) -> LogregError:
    reason = exc.strerror or type(exc).__name__
    return LogregError(
        f"Cannot write '{path}': {reason}. Nothing was changed there; free some space or pass another path."
    )


SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
COMPRESSED_SUFFIXES = (".bz2", ".gz", ".xz")


def is_svmlight(path, fmt: str | None = None) -> bool:
    """Whether `path` is an svmlight / LIBSVM file: `fmt` says so, or (no `fmt`) its name ends in
    .svm, .svmlight or .libsvm, optionally followed by .bz2, .gz or .xz."""
    if fmt is not None:
        return fmt == "svmlight"
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in SVMLIGHT_SUFFIXES
