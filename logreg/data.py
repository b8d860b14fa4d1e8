"""Datasets: the registry, CSV/Parquet loading, and split + standardise into one Split."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from logreg.errors import LogregError


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
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    """Original label of each class index 0..n_classes-1 (the recorded mapping)."""
    mean: np.ndarray
    """Per-feature statistics of the training part used to standardise (0 / 1 when off)."""
    scale: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_samples(self) -> int:
        return len(self.y_train) + len(self.y_val) + len(self.y_test)

    def transform(self, X_raw: np.ndarray) -> np.ndarray:
        """Standardise raw feature rows with the training part's statistics."""
        return (np.asarray(X_raw, dtype=np.float64) - self.mean) / self.scale

    @functools.cached_property
    def digest(self) -> str:
        """Content digest (sha256, first 16 hex digits) of all parts, for tracking."""
        h = hashlib.sha256()
        for a in (self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry: how to make the raw (X, y) arrays and where they come from."""

    name: str
    source: str
    make: Callable[..., tuple[np.ndarray, np.ndarray, dict]]
    shape: str
    n_classes: int
    evaluate_on_train: bool = False
    """Too small to split: train, validation and test are all the same points."""


# ---------------------------------------------------------------- generators


def _hours(seed: int):
    # The hours-studied toy of the tutorials: 1 and 2 hours fail, 3 hours pass.
    X = np.array([[1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1])
    return X, y, {"feature_names": ("hours",)}


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    n = 1000
    mean_pos = 2.5 * np.ones(2) + 1.3
    mean_neg = -2.5 * np.ones(2) + 1.3
    X = np.vstack([rng.normal(mean_neg, 1.0, (n, 2)), rng.normal(mean_pos, 1.0, (n, 2))])
    y = np.repeat([0, 1], n)
    return X, y, {"feature_names": ("x0", "x1")}


def _classification(seed: int):
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=2000, n_features=10, n_informative=5, n_redundant=2, random_state=seed
    )
    return X, y, {}


def _iris(seed: int):
    from sklearn.datasets import load_iris

    d = load_iris()
    keep = d.target > 0  # versicolor (1) vs virginica (2)
    return (
        d.data[keep],
        (d.target[keep] == 2).astype(int),
        {"feature_names": tuple(d.feature_names), "class_names": ("versicolor", "virginica")},
    )


def _breast_cancer(seed: int):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data, d.target, {"feature_names": tuple(d.feature_names), "class_names": tuple(d.target_names)}


def _digits(seed: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data, d.target, {}


SYNTHETIC_DEFAULTS = {"n": 10_000, "d": 20}
SYNTHETIC_WEIGHT_NORM = 2.0


def _synthetic(seed: int, n: int = SYNTHETIC_DEFAULTS["n"], d: int = SYNTHETIC_DEFAULTS["d"]):
    # A well-specified logistic model: x ~ N(0, I), P(y=1 | x) = sigmoid(x . w*).
    # The Bayes-optimal classifier is sign(x . w*) whatever n and d are, and its
    # accuracy E[sigmoid(|x . w*|)] depends only on |w*| (about 0.80 for |w*| = 2),
    # so accuracy stays meaningful at every size. float32 throughout: 1M x 100
    # takes about a second, dominated by the normal draws.
    rng = np.random.default_rng(seed)
    try:
        w_star = rng.standard_normal(d)
        X = rng.standard_normal((n, d), dtype=np.float32)
    except (MemoryError, ValueError):  # ValueError: beyond numpy's largest dimension
        raise LogregError(
            f"synthetic:n={n},d={d} needs {n * d * 4 / 1e9:.3g} GB for X alone, more than this "
            "machine can allocate. Use a smaller n or d."
        ) from None
    w_star *= SYNTHETIC_WEIGHT_NORM / np.linalg.norm(w_star)
    z = X @ w_star.astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    y = (rng.random(n) < p).astype(np.int64)
    return X, y, {"w_star": w_star, "bayes_p": p}


REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "hours",
            "tutorial toy: hours studied 1, 2, 3 -> fail, fail, pass",
            _hours,
            "3 x 1",
            2,
            evaluate_on_train=True,
        ),
        DatasetInfo("blobs", "two 2-D Gaussians, 1000 points each, std 1", _blobs, "2000 x 2", 2),
        DatasetInfo(
            "classification", "sklearn.datasets.make_classification", _classification, "2000 x 10", 2
        ),
        DatasetInfo("iris", "sklearn.datasets.load_iris, versicolor vs virginica", _iris, "100 x 4", 2),
        DatasetInfo(
            "breast_cancer", "sklearn.datasets.load_breast_cancer (Wisconsin)", _breast_cancer, "569 x 30", 2
        ),
        DatasetInfo("digits", "sklearn.datasets.load_digits (8x8 images)", _digits, "1797 x 64", 10),
        DatasetInfo(
            "synthetic",
            "generator: x ~ N(0, I), y ~ Bernoulli(sigmoid(x . w*)); size as synthetic:n=N,d=D",
            _synthetic,
            f"n x d (default {SYNTHETIC_DEFAULTS['n']} x {SYNTHETIC_DEFAULTS['d']})",
            2,
        ),
    ]
}


def parse_dataset(spec: str) -> tuple[str, dict[str, int]]:
    """Split 'synthetic:n=1000,d=10' into ('synthetic', {'n': 1000, 'd': 10})."""
    name, _, args = spec.partition(":")
    if name not in REGISTRY:
        raise LogregError(
            f"Unknown dataset {name!r}. Available datasets: {', '.join(REGISTRY)} "
            "(or --data FILE --target COLUMN for your own CSV/Parquet)."
        )
    kwargs: dict[str, int] = {}
    if args:
        if name != "synthetic":
            raise LogregError(f"Dataset {name!r} takes no size parameters. Got {spec!r}; use {name!r}.")
        for item in args.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if key not in SYNTHETIC_DEFAULTS or not eq:
                raise LogregError(
                    f"Bad synthetic parameter {item!r} in {spec!r}. Use synthetic:n=N,d=D "
                    "with whole numbers, e.g. synthetic:n=1000000,d=100."
                )
            try:
                number = int(float(value)) if "e" in value.lower() else int(value)
            except ValueError:
                number = None
            if number is None or number < 1 or (key == "n" and number < 10):
                raise LogregError(
                    f"The synthetic parameter {key!r} must be a whole number >= "
                    f"{10 if key == 'n' else 1}. Got {value!r} in {spec!r}."
                )
            kwargs[key] = number
    return name, kwargs


def check_dataset_name(spec: str) -> None:
    """Raise LogregError for an unknown dataset name or bad size parameters."""
    parse_dataset(spec)


# ---------------------------------------------------------------- user files


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


# ---------------------------------------------------------------- split


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
) -> Split:
    """Validate arrays, encode labels, split (stratified, seeded) and standardise."""
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
            f"Features with NaN or infinite values in {name}: {', '.join(bad)}. Impute or drop those rows."
        )
    y, classes = encode_labels(y_raw)
    if len(y) != X.shape[0]:
        raise LogregError(f"X has {X.shape[0]} rows but y has {len(y)} labels. Pass one label per row.")
    if len(classes) < 2:
        only = classes[0] if classes else "none"
        raise LogregError(
            f"The labels of {name} hold a single class ({only}). Logistic regression needs at "
            "least two classes."
        )
    if class_names is not None and len(class_names) == len(classes):
        classes = tuple(class_names)
    rng = np.random.default_rng(seed)
    if evaluate_on_train:
        tr = va = te = np.arange(len(y))
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
        if len(np.unique(y[tr])) < 2:
            raise LogregError(f"The training part of {name} holds a single class. Use more rows per class.")
    X_train = X[tr]  # fancy indexing copies, so standardising in place is safe
    if standardize:
        mean = X_train.mean(axis=0, dtype=np.float64)
        scale = X_train.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0  # constant features stay constant (as StandardScaler)
    else:
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])

    def part(idx):
        A = X_train if idx is tr else X[idx]
        if standardize:
            A -= mean.astype(A.dtype)
            A /= scale.astype(A.dtype)
        A.flags.writeable = False
        return A

    X_tr = part(tr)
    X_va = X_tr if evaluate_on_train else part(va)
    X_te = X_tr if evaluate_on_train else part(te)
    ys = []
    for idx in (tr, va, te):
        yy = y[idx]
        yy.flags.writeable = False
        ys.append(yy)
    return Split(
        name=name,
        source=source,
        X_train=X_tr,
        y_train=ys[0],
        X_val=X_va,
        y_val=ys[1],
        X_test=X_te,
        y_test=ys[2],
        n_classes=len(classes),
        feature_names=feature_names,
        class_names=classes,
        mean=mean,
        scale=scale,
        metadata=dict(metadata or {}, test_index=te),
    )


@functools.lru_cache(maxsize=8)
def _cached_split(
    dataset: str,
    data: str | None,
    target: str | None,
    seed: int,
    test_size: float,
    val_size: float,
    standardize: bool,
    dtype: str,
    mtime: float,
) -> Split:
    if data is not None:
        X, y, meta = read_table(data, target)
        return make_split(
            X,
            y,
            name=Path(data).name,
            source=f"file {data}",
            seed=seed,
            test_size=test_size,
            val_size=val_size,
            standardize=standardize,
            dtype=dtype,
            feature_names=meta["feature_names"],
            metadata=meta,
        )
    name, kwargs = parse_dataset(dataset)
    info = REGISTRY[name]
    X, y, meta = info.make(seed, **kwargs)
    extra = {}
    if "bayes_p" in meta:
        extra["w_star"] = meta["w_star"]
        extra["bayes_p"] = meta["bayes_p"]
    split = make_split(
        X,
        y,
        name=dataset,
        source=info.source,
        seed=seed,
        test_size=test_size,
        val_size=val_size,
        standardize=standardize,
        dtype=dtype,
        evaluate_on_train=info.evaluate_on_train,
        feature_names=meta.get("feature_names"),
        class_names=meta.get("class_names"),
    )
    if "bayes_p" in extra:
        # Accuracy of the Bayes-optimal rule sign(x . w*) on this test part, in expectation.
        p_test = extra["bayes_p"][split.metadata["test_index"]]
        split.metadata["bayes_accuracy"] = float(np.maximum(p_test, 1 - p_test).mean())
        split.metadata["w_star"] = extra["w_star"]
    return split


def load_split(config) -> Split:
    """The Split a TrainConfig asks for (cached: runs of a sweep share it)."""
    mtime = 0.0
    if config.data is not None:
        p = Path(config.data)
        mtime = p.stat().st_mtime if p.exists() else 0.0
    return _cached_split(
        config.dataset,
        config.data,
        config.target,
        config.seed,
        config.test_size,
        config.val_size,
        config.standardize,
        config.dtype,
        mtime,
    )


def describe_datasets() -> list[dict[str, Any]]:
    """One row per registry entry, for `logreg datasets`."""
    return [
        {"name": d.name, "shape": d.shape, "n_classes": d.n_classes, "source": d.source}
        for d in REGISTRY.values()
    ]
