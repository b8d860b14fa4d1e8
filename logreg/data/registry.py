"""The dataset registry: the tutorials' toys, scikit-learn's real datasets and a scalable generator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from logreg.config import is_sparse_name
from logreg.errors import LogregError, clip
from logreg.paths import check_input_file, is_svmlight


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
    probe: Probe | None = None
    """A question the tutorial asks of the fitted model (hours: P(pass | 4 hours))."""
    task: str = "classification"
    """classification (models logistic, mlp) or regression (model linear; n_classes 0)."""


@dataclass(frozen=True)
class Probe:
    """P(y = 1 | x) at one raw input x, reported as a metric of its own."""

    metric: str
    x: tuple[float, ...]
    label: str


def _hours(seed: int):
    # The hours-studied toy of the tutorials: 1 and 2 hours fail, 3 hours pass.
    X = np.array([[1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1])
    return X, y, {"feature_names": ("hours",)}


def _line(seed: int):
    # The linear-regression toy of the tutorials: x = 1, 2, 3 -> y = 2, 4, 6 (y = 2x).
    return np.array([[1.0], [2.0], [3.0]]), np.array([2.0, 4.0, 6.0]), {"feature_names": ("x",)}


def _diabetes(seed: int):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return d.data, d.target, {"feature_names": tuple(d.feature_names)}


def _moons(seed: int):
    # Two interleaving half circles: no straight line separates them, one hidden layer does.
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=1000, noise=0.2, random_state=seed)
    return X, y, {"feature_names": ("x0", "x1")}


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


TEXT_DEFAULTS = {"n": 20_000, "d": 50_000, "nnz": 50}
TEXT_ZIPF_EXPONENT = 1.1  # word frequencies in text fall off about as 1 / rank^1.1
TEXT_TOPIC_WORDS = 2_000
TEXT_SIGNAL = 4.0  # P(y=1 | x) = sigmoid(TEXT_SIGNAL * the standardised score x . w*)


def _text(
    seed: int, n: int = TEXT_DEFAULTS["n"], d: int = TEXT_DEFAULTS["d"], nnz: int = TEXT_DEFAULTS["nnz"]
):
    # A text-like sparse problem, as rcv1 or news20 look: each row draws `nnz` words from a Zipf
    # law over d columns (repeats count), values log(1 + count), rows scaled to unit L2 norm (as
    # tf-idf rows are). y ~ Bernoulli(sigmoid(TEXT_SIGNAL * z)), z = x . w* standardised.
    # Nothing dense of size n x d is made: n * nnz draws and a CSR matrix.
    import scipy.sparse as sp

    if 2 * nnz > d:
        raise LogregError(
            f"text:nnz={nnz} needs at least {2 * nnz} columns (d={d}): rows draw distinct words. "
            "Use nnz <= d / 2."
        )
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, d + 1, dtype=np.float64) ** -TEXT_ZIPF_EXPONENT)
    cdf /= cdf[-1]
    # Each row draws words until it holds `nnz` distinct ones (a repeat raises a word's count):
    # 3 nnz draws a row at once, kept up to the nnz-th distinct word; the few rows short of
    # distinct words draw again, with twice as many.
    parts, rows, draws = [], np.arange(n, dtype=np.int64), 3 * nnz
    while len(rows):
        keys = np.repeat(rows * d, draws) + np.searchsorted(cdf, rng.random(len(rows) * draws))
        keys = np.minimum(keys, np.repeat(rows * d + d - 1, draws))
        words, first, counts = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # by row, then in the order drawn
        words, counts = words[order], counts[order]
        row = words // d
        rank = np.arange(len(words)) - np.searchsorted(row, row)  # 0, 1, ... within each row
        full = np.bincount(row, minlength=n)[rows] >= nnz
        keep = (rank < nnz) & np.isin(row, rows[full])
        parts.append((words[keep], counts[keep]))
        rows, draws = rows[~full], 2 * draws
    words = np.concatenate([w for w, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    X = sp.csr_array((counts.astype(np.float64), (words // d, words % d)), shape=(n, d))
    if X.nnz < 2**31 and d < 2**31:  # 32-bit indices, as scipy's own readers and writers use
        X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    np.log1p(X.data, out=X.data)
    norms = np.sqrt(np.add.reduceat(X.data**2, X.indptr[:-1])) if X.nnz else np.ones(n)
    X.data /= np.repeat(norms, np.diff(X.indptr))
    # The label depends on the TEXT_TOPIC_WORDS most frequent words (as a topic shows in common
    # words); the rarer ones are noise a model can overfit.
    w_star = np.zeros(d)
    w_star[: min(d, TEXT_TOPIC_WORDS)] = rng.standard_normal(min(d, TEXT_TOPIC_WORDS))
    z = X @ w_star
    z = (z - z.mean()) / (z.std() or 1.0)
    p = 1.0 / (1.0 + np.exp(-TEXT_SIGNAL * z))
    y = (rng.random(n) < p).astype(np.int64)
    return X, y, {"w_star": w_star, "bayes_p": p}


SIZE_PARAMETERS = {"synthetic": SYNTHETIC_DEFAULTS, "text": TEXT_DEFAULTS}
"""The generators' size parameters (name:n=N,d=D,...) and their defaults."""


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
            probe=Probe("p_pass_at_4_hours", (4.0,), "P(pass | 4 hours)"),
        ),
        DatasetInfo("blobs", "two 2-D Gaussians, 1000 points each, std 1", _blobs, "2000 x 2", 2),
        DatasetInfo(
            "moons",
            "sklearn.datasets.make_moons (noise 0.2): not linearly separable",
            _moons,
            "1000 x 2",
            2,
        ),
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
        DatasetInfo(
            "text",
            "generator, sparse: Zipf word counts, rows of unit norm, y ~ Bernoulli(sigmoid(4 z)); "
            "size as text:n=N,d=D,nnz=K (non-zeros per row)",
            _text,
            "n x d sparse (default {n} x {d}, {nnz} per row)".format(**TEXT_DEFAULTS),
            2,
        ),
        DatasetInfo(
            "line",
            "tutorial toy for model linear: x = 1, 2, 3 -> y = 2, 4, 6",
            _line,
            "3 x 1",
            0,
            evaluate_on_train=True,
            task="regression",
        ),
        DatasetInfo(
            "diabetes",
            "sklearn.datasets.load_diabetes (regression: disease progression), for model linear",
            _diabetes,
            "442 x 10",
            0,
            task="regression",
        ),
    ]
}


def model_task(model: str) -> str:
    """The task a model solves: regression for 'linear', classification otherwise."""
    return "regression" if model == "linear" else "classification"


def is_file_dataset(spec: str) -> bool:
    """Whether a dataset name is an svmlight file's path (experiment files can name one; a path
    relative to the folder logreg runs in)."""
    return is_svmlight(spec)


def _task(spec: str) -> str:
    """The task of a registry dataset or a LIBSVM name (binary classification)."""
    if is_file_dataset(spec):
        return "classification"
    name = parse_dataset(spec)[0]
    return REGISTRY[name].task if name in REGISTRY else "classification"


def check_task(spec: str, model: str) -> None:
    """Raise LogregError when a registry dataset's task does not suit the model."""
    if is_file_dataset(spec) or _task(spec) == model_task(model):
        return  # a file's labels are classes or numbers, as the model takes them
    name = parse_dataset(spec)[0]
    if name not in REGISTRY:
        raise LogregError(
            f"Dataset {name!r} is a classification dataset; model 'linear' needs a numeric target. "
            "Use --model logistic."
        )
    info = REGISTRY[name]
    if info.task == "regression":
        raise LogregError(
            f"Dataset {info.name!r} is a regression dataset; model {model!r} needs classes. "
            "Use --model linear, or a classification dataset."
        )
    regression = ", ".join(d.name for d in REGISTRY.values() if d.task == "regression")
    raise LogregError(
        f"Dataset {info.name!r} is a classification dataset; model 'linear' needs a numeric target. "
        f"Use a regression dataset ({regression}, or --data FILE --target NUMERIC_COLUMN) "
        "or --model logistic."
    )


def suits(spec: str, model: str) -> bool:
    """Whether a registry dataset's task suits the model (experiment cells skip the others); the
    mlp takes dense rows only, so no sparse dataset suits it; an svmlight file suits the models
    that take sparse rows (logistic, linear)."""
    if model == "mlp" and is_sparse_name(spec):
        return False
    if is_file_dataset(spec):
        return True
    return _task(spec) == model_task(model)


def parse_dataset(spec: str) -> tuple[str, dict[str, int]]:
    """Split 'synthetic:n=1000,d=10' into ('synthetic', {'n': 1000, 'd': 10})."""
    from logreg.data.libsvm import LIBSVM

    name, _, args = spec.partition(":")
    if name not in REGISTRY and name not in LIBSVM:
        raise LogregError(
            f"Unknown dataset {clip(repr(name))}. Available datasets: {', '.join(REGISTRY)}; "
            f"LIBSVM's, once fetched (logreg datasets fetch NAME): {', '.join(LIBSVM)} "
            "(or --data FILE for your own CSV, Parquet or svmlight file)."
        )
    kwargs: dict[str, int] = {}
    if args:
        if name not in SIZE_PARAMETERS:
            raise LogregError(
                f"Dataset {name!r} takes no size parameters. Got {clip(repr(spec))}; use {name!r}."
            )
        defaults = SIZE_PARAMETERS[name]
        for item in args.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if key not in defaults or not eq:
                form = ",".join(f"{k}={k.upper()}" for k in defaults)
                example = ",".join(f"{k}={v}" for k, v in defaults.items())
                raise LogregError(
                    f"Bad {name} parameter {clip(repr(item))}. Use {name}:{form} "
                    f"with whole numbers, e.g. {name}:{example}."
                )
            try:
                number = int(float(value)) if "e" in value.lower() else int(value)
            except ValueError:
                number = None
            if number is None or number < 1 or (key == "n" and number < 10):
                raise LogregError(
                    f"The {name} parameter {key!r} must be a whole number >= "
                    f"{10 if key == 'n' else 1}. Got {clip(repr(value))}."
                )
            kwargs[key] = number
    return name, kwargs


def check_dataset_name(spec: str) -> None:
    """Raise LogregError for an unknown dataset name or bad size parameters (or, for an svmlight
    file's path, for a missing file)."""
    if is_file_dataset(spec):
        check_input_file(spec, "Dataset", "Check the path (relative to the folder logreg runs in).")
        return
    parse_dataset(spec)


def describe_datasets() -> list[dict[str, Any]]:
    """One row per registry entry, for `logreg datasets`."""
    return [
        {"name": d.name, "shape": d.shape, "n_classes": d.n_classes, "task": d.task, "source": d.source}
        for d in REGISTRY.values()
    ]
