"""The user's own CSV or Parquet file -> numeric features X and raw labels y."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from logreg.errors import LogregError, first_line, quote_names
from logreg.paths import check_input_file

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_frame(path: Path, suffix: str):
    """The file as a DataFrame; unreadable content as one line."""
    import pandas as pd

    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LogregError(
            f"File '{path}' could not be read as CSV: {first_line(exc).rstrip('.')}. Check its format."
        ) from None
    except (OSError, ValueError) as exc:
        if suffix == ".csv":
            raise
        raise LogregError(
            f"File '{path}' could not be read as Parquet: {first_line(exc).rstrip('.')}. "
            "Check that it is a valid Parquet file."
        ) from None


def _header(path: Path, suffix: str) -> list[str]:
    """The column names as written in the file (pandas renames a repeated name 'y' to 'y.1')."""
    import pandas as pd

    if suffix == ".csv":
        row = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
        return [str(v) for v in row.iloc[0]] if len(row) else []
    import pyarrow.parquet as pq

    return [str(n) for n in pq.read_schema(path).names]


def _check_unique_columns(path: Path, suffix: str) -> None:
    try:
        header = _header(path, suffix)
    except Exception:  # noqa: BLE001 - unreadable: reading the whole file says why, in one line
        return
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise LogregError(
            f"Repeated column names in {path.name}: {quote_names(repeated)}. Each column needs its own "
            "name (a repeated target would leak into the features): rename or drop the copies."
        )


def class_labels(labels, name: str, target: str):
    """Labels of a classification target: strings stripped of surrounding spaces ('1 ' is '1');
    a numeric target must hold whole numbers, in fewer classes than half the rows."""
    import pandas as pd

    if labels.dtype == object or pd.api.types.is_string_dtype(labels):
        labels = labels.map(lambda v: v.strip() if isinstance(v, str) else v)
    elif pd.api.types.is_float_dtype(labels):
        values = labels.to_numpy(dtype=np.float64)
        fractional = values[values != np.round(values)]
        if len(fractional):
            raise LogregError(
                f"The target column {target!r} of {name} holds numbers that are not whole "
                f"(e.g. {fractional[0]:g}): a classifier needs class labels. Use --model linear for a "
                "numeric target, or encode the classes as integers or names."
            )
    n_classes = labels.nunique()
    if n_classes > 2 and n_classes > len(labels) / 2:
        raise LogregError(
            f"The target column {target!r} of {name} has {n_classes} distinct values in {len(labels)} "
            "rows: too many classes to learn. Use --model linear for a numeric target, or encode the "
            "classes."
        )
    return labels


def read_table(
    path: str | Path, target: str, task: str = "classification", fmt: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a CSV or Parquet file (by its extension, or `fmt`) into numeric features X and raw
    labels y."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise LogregError(f"'{path}' is a directory. Pass a CSV or Parquet file to --data.")
    check_input_file(path, "--data", "Check the --data path.")
    suffix = {"csv": ".csv", "parquet": ".parquet"}.get(fmt or "", path.suffix.lower())
    if suffix not in TABLE_SUFFIXES:
        raise LogregError(
            f"File '{path}' is not CSV, Parquet or svmlight (its extension is {suffix or 'missing'!r}). "
            "Use a .csv, .parquet or .svm file, or name its format with --format."
        )
    if path.stat().st_size == 0:
        raise LogregError(f"File '{path}' is empty. Pass a file with a header row and data rows.")
    _check_unique_columns(path, suffix)
    df = _read_frame(path, suffix)
    if target not in df.columns:
        raise LogregError(
            f"Column {target!r} not found in {path.name}. Available columns: {quote_names(df.columns)}."
        )
    if len(df) == 0:
        raise LogregError(f"File '{path}' has no data rows. Pass a file with data rows.")
    features = df.drop(columns=[target])
    if features.shape[1] == 0:
        raise LogregError(f"File '{path}' has no feature columns besides {target!r}. Add feature columns.")
    bad = [
        str(c)
        for c in features.columns
        if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))
    ]
    if bad:
        raise LogregError(
            f"Non-numeric feature columns in {path.name}: {quote_names(bad)}. "
            "Encode them as numbers or drop them."
        )
    X = features.to_numpy(dtype=np.float64)
    labels = df[target]
    if labels.isna().any():
        raise LogregError(
            f"The target column {target!r} in {path.name} has {int(labels.isna().sum())} missing "
            "values. Drop or fill those rows."
        )
    if task == "classification":
        labels = class_labels(labels, path.name, target)
    meta = {
        "feature_names": tuple(map(str, features.columns)),
        "file": str(path),
        "sha256": file_sha256(path),
    }
    return X, labels.to_numpy(), meta


def file_sha256(path: Path) -> str:
    """The file's sha256 (what MLflow records as the source of a run's data)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
