"""The user's own CSV or Parquet file -> numeric features X and raw labels y."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from logreg.errors import LogregError


def read_table(path: str | Path, target: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a CSV or Parquet file into numeric features X and raw labels y."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise LogregError(f"File '{path}' not found. Check the --data path.")
    if path.is_dir():
        raise LogregError(f"'{path}' is a directory. Pass a CSV or Parquet file to --data.")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise LogregError(
            f"File '{path}' is not CSV or Parquet (its extension is {suffix or 'missing'!r}). "
            "Use a .csv or .parquet file."
        )
    if path.stat().st_size == 0:
        raise LogregError(f"File '{path}' is empty. Pass a file with a header row and data rows.")
    try:
        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0].rstrip(".")
        raise LogregError(
            f"File '{path}' could not be read as CSV: {first_line}. Check its format."
        ) from None
    except (OSError, ValueError) as exc:
        if suffix == ".csv":
            raise
        first_line = str(exc).splitlines()[0].rstrip(".")
        raise LogregError(
            f"File '{path}' could not be read as Parquet: {first_line}. "
            "Check that it is a valid Parquet file."
        ) from None
    if target not in df.columns:
        cols = ", ".join(map(str, df.columns))
        raise LogregError(f"Column {target!r} not found in {path.name}. Available columns: {cols}.")
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
            f"Non-numeric feature columns in {path.name}: {', '.join(bad)}. "
            "Encode them as numbers or drop them."
        )
    X = features.to_numpy(dtype=np.float64)
    labels = df[target]
    if labels.isna().any():
        raise LogregError(
            f"The target column {target!r} in {path.name} has {int(labels.isna().sum())} missing "
            "values. Drop or fill those rows."
        )
    return X, labels.to_numpy(), {"feature_names": tuple(map(str, features.columns)), "file": str(path)}
