"""Arrays -> one immutable Split: labels encoded, split (stratified, seeded), standardised."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from logreg.errors import LogregError, quote_names


@dataclass(frozen=True)
class Split:
    """A dataset split into train / validation / test parts, standardised.

    The validation part is carved out of the training part (for tuning); the
    test part is never used for fitting or tuning. Arrays are read-only and may
    be shared between runs.
    """

    name: str
    source: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    """0 for a regression split (y holds the numeric targets)."""
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    """Original label of each class index 0..n_classes-1 (the recorded mapping)."""
    mean: np.ndarray
    """Per-feature statistics of the training part used to standardise (0 / 1 when off)."""
    scale: np.ndarray
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Read-only: test_index, and per dataset e.g. w_star, bayes_accuracy, probe."""

    def __post_init__(self) -> None:
        # Splits are cached and shared between runs: nothing may change one after construction.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_samples(self) -> int:
        return len(self.y_train) + len(self.y_val) + len(self.y_test)

    @property
    def sparse(self) -> bool:
        """Whether the parts are scipy CSR matrices (svmlight files, the text generator)."""
        return is_sparse(self.X_train)

    def transform(self, X_raw):
        """Standardise raw feature rows with the training part's statistics (sparse rows: scaled
        only, as the split's were)."""
        if is_sparse(X_raw):
            return _scaled_csr(X_raw.astype(np.float64), self.scale)
        return (np.asarray(X_raw, dtype=np.float64) - self.mean) / self.scale

    @functools.cached_property
    def digest(self) -> str:
        """Content digest (sha256, first 16 hex digits) of all parts, for tracking."""
        return _digest(self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test)

    @functools.cached_property
    def part_digests(self) -> dict[str, str]:
        """The digest of each part's every row (train, validation, test), as MLflow datasets."""
        parts = {"train": (self.X_train, self.y_train), "validation": (self.X_val, self.y_val)}
        return {
            name: _digest(*arrays) for name, arrays in {**parts, "test": (self.X_test, self.y_test)}.items()
        }


def is_sparse(X) -> bool:
    import scipy.sparse as sp

    return sp.issparse(X)


def _digest(*arrays) -> str:
    """sha256 of every value (a sparse matrix: its shape, row pointers, column indices, values)."""
    h = hashlib.sha256()
    for a in arrays:
        if is_sparse(a):
            h.update(np.asarray(a.shape, dtype=np.int64).tobytes())
            for part in (a.indptr.astype(np.int64), a.indices.astype(np.int64), a.data):
                h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _scaled_csr(X, scale):
    """A CSR copy of X with column j divided by scale[j] (zeros stay zeros: no centring)."""
    import scipy.sparse as sp

    X = sp.csr_array(X, copy=True)
    X.data /= scale[X.indices].astype(X.dtype)
    return X


def encode_labels(y_raw: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map labels (0/1, booleans, strings, any sortable values) to 0..K-1, sorted."""
    y_raw = np.asarray(y_raw)
    if y_raw.ndim != 1:
        raise LogregError(f"Labels must be one-dimensional. Got shape {y_raw.shape}.")
    try:
        classes, y = np.unique(y_raw, return_inverse=True)
    except TypeError:
        # Mixed types (e.g. ints and strings): order them by their text.
        classes, y = np.unique(y_raw.astype(str), return_inverse=True)
    return y.astype(np.int64), tuple(str(c) for c in classes)


def _stratified_indices(y: np.ndarray, frac: float, rng: np.random.Generator):
    """Indices (rest, held) with `frac` of each class held out, shuffled, seeded."""
    held, rest = [np.empty(0, np.int64)], [np.empty(0, np.int64)]  # y may be empty
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(frac * len(idx)))
        held.append(idx[:k])
        rest.append(idx[k:])
    held_idx, rest_idx = np.concatenate(held), np.concatenate(rest)
    rng.shuffle(held_idx)
    rng.shuffle(rest_idx)
    return rest_idx, held_idx


def _check_sparse_features(X, name: str, feature_names, dtype: str):
    """A scipy sparse X as a CSR array of `dtype` with finite values; names only when given."""
    import scipy.sparse as sp

    if X.ndim != 2 or X.shape[1] == 0:
        raise LogregError(f"X must be a 2-D matrix with at least one column. Got shape {X.shape}.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise LogregError(f"X must be numeric. Got dtype {X.dtype}; encode the features as numbers.")
    X = sp.csr_array(X, dtype=dtype)
    X.sum_duplicates()
    X.sort_indices()
    if not np.isfinite(X.data).all():
        bad = sorted({int(j) for j in X.indices[~np.isfinite(X.data)]})[:5]
        raise LogregError(
            f"Features with NaN or infinite values in {name}: columns {bad}. Impute or drop those rows."
        )
    # A million columns would need a million names: sparse data is named by column index.
    return X, tuple(feature_names or ())


def _check_features(X, name: str, feature_names, dtype: str):
    """X as a 2-D numeric array of `dtype` with finite values, and its feature names."""
    if is_sparse(X):
        return _check_sparse_features(X, name, feature_names, dtype)
    try:
        X = np.asarray(X)
    except (ValueError, TypeError) as exc:  # e.g. rows of different lengths
        raise LogregError(f"X must be a 2-D array (n_samples, n_features): {exc}") from None
    if X.ndim != 2:
        raise LogregError(f"X must be a 2-D array (n_samples, n_features). Got shape {X.shape}.")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise LogregError(f"X must be numeric. Got dtype {X.dtype}; encode the features as numbers.")
    if X.shape[1] == 0:
        raise LogregError("X has no features (0 columns). Pass at least one feature column.")
    feature_names = tuple(feature_names or (f"x{i}" for i in range(X.shape[1])))
    X = X.astype(dtype, copy=False)
    finite = np.isfinite(X).all(axis=0)
    if not finite.all():
        bad = [feature_names[i] for i in np.flatnonzero(~finite)]
        raise LogregError(
            f"Features with NaN or infinite values in {name}: {quote_names(bad)}. Impute or drop those rows."
        )
    return X, feature_names


def _check_labels(y_raw, n_rows: int, name: str, class_names):
    """Labels encoded as 0..K-1 with at least two classes, one per row; the class names."""
    y, classes = encode_labels(y_raw)
    if len(y) != n_rows:
        raise LogregError(f"X has {n_rows} rows but y has {len(y)} labels. Pass one label per row.")
    if len(classes) < 2:
        only = classes[0] if classes else "none"
        raise LogregError(
            f"The labels of {name} hold a single class ({only}). Logistic regression needs at "
            "least two classes."
        )
    if class_names is not None and len(class_names) == len(classes):
        classes = tuple(class_names)
    return y, classes


def _check_targets(y_raw, n_rows: int, name: str):
    """Numeric, finite regression targets (float64), one per row."""
    y = np.asarray(y_raw)
    if y.ndim != 1:
        raise LogregError(f"Targets must be one-dimensional. Got shape {y.shape}.")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise LogregError(
            f"The regression target of {name} must be numeric. Got dtype {y.dtype}; "
            "pass a numeric --target column, or use --model logistic for class labels."
        )
    if len(y) != n_rows:
        raise LogregError(f"X has {n_rows} rows but y has {len(y)} targets. Pass one target per row.")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise LogregError(f"The regression target of {name} has NaN or infinite values. Drop those rows.")
    return y


def _split_indices(
    y,
    name: str,
    seed: int,
    test_size: float,
    val_size: float,
    evaluate_on_train: bool,
    classes: bool = True,
    test_rows: int = 0,
):
    """Row indices (train, validation, test): stratified and seeded; all rows when too small to
    split; the last `test_rows` rows as the test part when the data comes with its own."""
    if evaluate_on_train:
        everything = np.arange(len(y))
        return everything, everything, everything
    rng = np.random.default_rng(seed)
    if test_rows:
        rest, te = np.arange(len(y) - test_rows), np.arange(len(y) - test_rows, len(y))
    else:
        rest, te = _stratified_indices(y, test_size, rng)
    tr_local, va_local = _stratified_indices(y[rest], val_size, rng)
    tr, va = rest[tr_local], rest[va_local]
    for part, idx in (("test", te), ("validation", va), ("training", tr)):
        if len(idx) == 0:
            raise LogregError(
                f"The {part} part of {name} is empty ({len(y)} rows, test_size={test_size}, "
                f"val_size={val_size}). Use more rows or other sizes."
            )
    if classes and len(np.unique(y[tr])) < 2:
        raise LogregError(f"The training part of {name} holds a single class. Use more rows per class.")
    return tr, va, te


def _statistics(X_train, standardize: bool):
    """Per-feature mean and scale of the training part (0 and 1 when not standardising)."""
    if not standardize:
        return np.zeros(X_train.shape[1]), np.ones(X_train.shape[1])
    if is_sparse(X_train):
        # Scale only, never centre (centring would fill every zero): by each column's largest
        # |value|, as MaxAbsScaler. Values stay in [-1, 1] with their zeros and signs. Dividing by
        # the standard deviation (StandardScaler(with_mean=False)) would blow a word seen once in
        # 18,000 rows up about 130-fold, and rare words would then dominate the fit.
        scale = np.zeros(X_train.shape[1])
        np.maximum.at(scale, X_train.indices, np.abs(X_train.data.astype(np.float64)))
        scale[scale < np.finfo(X_train.dtype).tiny] = 1.0
        return np.zeros(X_train.shape[1]), scale
    mean = X_train.mean(axis=0, dtype=np.float64)
    scale = X_train.std(axis=0, dtype=np.float64)
    # Constant features stay constant (as StandardScaler); so does a spread below the dtype's
    # smallest normal number, which would divide by zero once cast to it.
    scale[scale < np.finfo(X_train.dtype).tiny] = 1.0
    return mean, scale


def _standardised(idx, *, X, X_train, tr, mean, scale, on: bool):
    """Rows `idx` of X, standardised in place of their copy with the training part's statistics."""
    A = X_train if idx is tr else X[idx]
    if is_sparse(A):
        return _read_only_csr(_scaled_csr(A, scale) if on else A)
    if on:
        A -= mean.astype(A.dtype)
        A /= scale.astype(A.dtype)
    return _read_only(A)


def _read_only(A):
    A.flags.writeable = False
    return A


def _read_only_csr(A):
    for part in (A.data, A.indices, A.indptr):
        part.flags.writeable = False
    return A


def _targets(y_raw, n_rows: int, name: str, class_names, task: str):
    """(y, class names, strata): labels 0..K-1 stratify; regression targets form one stratum."""
    if task == "regression":
        y = _check_targets(y_raw, n_rows, name)
        return y, (), np.zeros(len(y), dtype=np.int64)  # one stratum: a plain seeded random split
    y, classes = _check_labels(y_raw, n_rows, name, class_names)
    return y, classes, y


def make_split(
    X,
    y_raw,
    *,
    name: str = "arrays",
    source: str = "arrays",
    seed: int = 0,
    test_size: float = 0.25,
    val_size: float = 0.2,
    standardize: bool = True,
    dtype: str = "float32",
    evaluate_on_train: bool = False,
    feature_names=None,
    class_names=None,
    metadata=None,
    task: str = "classification",
    test_rows: int = 0,
) -> Split:
    """Validate arrays, encode labels, split (stratified, seeded) and standardise.

    task 'regression' keeps y as numeric targets (float64, not standardised) and splits at
    random (n_classes 0). `test_rows` > 0: the last rows are the test part (a dataset's own test
    file; test_size is then unused).
    """
    X, feature_names = _check_features(X, name, feature_names, dtype)
    y, classes, strata = _targets(y_raw, X.shape[0], name, class_names, task)
    regression = task == "regression"
    sizes = (test_size, val_size, evaluate_on_train)
    tr, va, te = _split_indices(strata, name, seed, *sizes, classes=not regression, test_rows=test_rows)
    X_train = X[tr]  # fancy indexing copies, so standardising in place is safe
    mean, scale = _statistics(X_train, standardize)
    part = functools.partial(
        _standardised, X=X, X_train=X_train, tr=tr, mean=mean, scale=scale, on=standardize
    )
    X_tr = part(tr)
    X_va = X_tr if evaluate_on_train else part(va)
    X_te = X_tr if evaluate_on_train else part(te)
    return Split(
        name=name,
        source=source,
        X_train=X_tr,
        y_train=_read_only(y[tr]),
        X_val=X_va,
        y_val=_read_only(y[va]),
        X_test=X_te,
        y_test=_read_only(y[te]),
        n_classes=len(classes),
        feature_names=feature_names,
        class_names=classes,
        mean=_read_only(mean),
        scale=_read_only(scale),
        metadata={**(metadata or {}), "test_index": _read_only(te)},
    )
