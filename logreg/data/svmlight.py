"""svmlight / LIBSVM files -> a scipy CSR matrix and the labels in the file.

One row per line: `<label> <index>:<value> <index>:<value> ... [# comment]`, indices from 1,
increasing within a line (LIBSVM's rule), values and labels as numbers. The file may be
compressed (.bz2, .gz, .xz). scikit-learn's C parser reads it; when it refuses a file, the file
is scanned again line by line to say which line is wrong and why.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np

from logreg.errors import LogregError
from logreg.paths import check_input_file, is_svmlight

COMPRESSIONS = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}

__all__ = ["COMPRESSIONS", "is_svmlight", "line_error", "read_svmlight"]


def _open(path: Path):
    return COMPRESSIONS.get(path.suffix.lower(), open)(path, "rb")


def _token_error(token: str, previous: int, n_features: int | None) -> tuple[str, int]:
    """Why one `index:value` token is wrong ('' when it is fine), and its index."""
    index, sep, value = token.partition(":")
    if not sep:
        return f"{token!r} is not index:value", previous
    if index == "qid":
        return "", previous
    if not index.isdigit():
        return f"the index {index!r} is not a whole number", previous
    i = int(index)
    if i == 0:
        return "index 0: LIBSVM indices start at 1", previous
    if i <= previous:
        return f"index {i} after {previous}: indices must increase within a line (no duplicates)", i
    if n_features is not None and i > n_features:
        return f"index {i} beyond the {n_features} features expected (raise --n-features)", i
    try:
        float(value)
    except ValueError:
        return f"the value {value!r} of index {i} is not a number", i
    return "", i


def line_error(line: str, n_features: int | None = None) -> str:
    """Why one line of an svmlight file is wrong; '' when it is fine (or blank / a comment)."""
    tokens = line.split("#", 1)[0].split()
    if not tokens:
        return ""
    try:
        float(tokens[0])
    except ValueError:
        return f"the label {tokens[0]!r} is not a number"
    previous = 0
    for token in tokens[1:]:
        why, previous = _token_error(token, previous, n_features)
        if why:
            return why
    return ""


def _first_bad_line(path: Path, n_features: int | None) -> tuple[int, str] | None:
    with _open(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                return number, "it is not text"
            why = line_error(line, n_features)
            if why:
                return number, why
    return None


def _labels(y: np.ndarray) -> np.ndarray:
    """Whole-number labels as integers (-1/+1, 1/2 read as -1.0, 2.0 print as -1, 2)."""
    if len(y) and np.all(y == np.round(y)) and np.abs(y).max() < 2**53:
        return y.astype(np.int64)
    return y


def read_svmlight(
    path: str | Path, n_features: int | None = None, task: str = "classification"
) -> tuple[object, np.ndarray, dict]:
    """(X as float64 CSR, labels, meta) from an svmlight / LIBSVM file; one line on bad content.

    `n_features` fixes the column count (a test file that must match its train file);
    otherwise it is the largest index in the file.
    """
    from sklearn.datasets import load_svmlight_file

    from logreg.data.files import class_labels, file_sha256

    path = Path(path)
    if path.is_dir():
        raise LogregError(f"'{path}' is a directory. Pass an svmlight file to --data.")
    check_input_file(path, "--data", "Check the --data path.")
    try:
        with _open(path) as f:
            X, y = load_svmlight_file(f, n_features=n_features, zero_based=False, dtype=np.float64)
    except (ValueError, OSError, EOFError, lzma.LZMAError) as exc:
        if isinstance(exc, OSError | EOFError | lzma.LZMAError):
            raise LogregError(
                f"File '{path}' could not be decompressed ({exc}). Download it again, or check "
                "that its extension names its compression."
            ) from None
        bad = _first_bad_line(path, n_features)
        where = f"line {bad[0]}: {bad[1]}" if bad else str(exc).rstrip(".")
        raise LogregError(
            f"File '{path}' is not a valid svmlight file at {where}. Fix or remove that line."
        ) from None
    if X.shape[0] == 0:
        raise LogregError(f"File '{path}' has no data rows. Pass a file with one example per line.")
    if X.shape[1] == 0:
        raise LogregError(f"File '{path}' has no features (no index:value pairs). Check the file.")
    X.sort_indices()
    y = _labels(y)
    if task == "classification":
        import pandas as pd

        y = class_labels(pd.Series(y), path.name, "label").to_numpy()
    meta = {
        "feature_names": None,
        "file": str(path),
        "sha256": file_sha256(path),
        "format": "svmlight",
    }
    return X.tocsr(), y, meta
