"""Property: bad input is refused with LogregError, never another exception.

Hypothesis feeds random arrays to make_split, random field values to
TrainConfig (and train, with a few epochs, when the config is accepted), and
random file contents to read_table. Each call must either succeed or raise
LogregError; anything else escaping is a bug (and shrinks to a small example).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from logreg import LogregError, TrainConfig, make_split, train
from logreg.data import parse_dataset, read_table

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# LOGREG_HYPOTHESIS_SCALE=20 pytest tests/test_properties.py searches 20 times longer.
SCALE = float(os.environ.get("LOGREG_HYPOTHESIS_SCALE", "1"))

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::numpy.exceptions.ComplexWarning")


def succeeds_or_refuses(fn, *args, **kwargs):
    """fn's result, or None when it raised LogregError (any other exception propagates)."""
    try:
        result = fn(*args, **kwargs)
    except LogregError as exc:
        assert str(exc), "a LogregError must say what is wrong"
        event(f"{fn.__name__}: refused")
        return None
    event(f"{fn.__name__}: succeeded")
    return result


# ------------------------------------------------------------------ make_split

numeric_dtypes = st.sampled_from(
    [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint64, np.bool_, np.complex128]
)
any_shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9)
table_shape = st.tuples(st.integers(0, 24), st.integers(0, 4))


@st.composite
def feature_arrays(draw):
    kind = draw(
        st.sampled_from(["clean"] * 4 + ["numeric", "numeric_2d", "strings", "constant", "ragged", "objects"])
    )
    if kind == "clean":  # finite numbers, a few rows or more: the path that succeeds
        shape = st.tuples(st.integers(1, 40), st.integers(1, 4))
        dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
        elements = st.floats(-1e6, 1e6, width=32) if dtype in (np.float64, np.float32) else None
        return draw(hnp.arrays(dtype, shape, elements=elements))
    if kind == "numeric":
        return draw(hnp.arrays(draw(numeric_dtypes), any_shape))
    if kind == "numeric_2d":  # most often 2-D: the interesting shapes (0 rows, 0 cols, 1 row)
        return draw(hnp.arrays(draw(numeric_dtypes), table_shape))
    n, d = draw(table_shape)
    if kind == "strings":
        return draw(hnp.arrays(hnp.unicode_string_dtypes(max_len=3), (n, d)))
    if kind == "constant":
        value = draw(st.sampled_from([0.0, 1.0, -3.5, 1e300, float("nan"), float("inf"), True]))
        X = np.random.default_rng(draw(st.integers(0, 9))).normal(size=(n, d))
        cols = draw(st.lists(st.integers(0, max(d - 1, 0)), max_size=d))
        for c in cols:
            X[:, c] = value
        return X
    if kind == "ragged":
        return [[1.0] * draw(st.integers(0, 3)) for _ in range(max(n, 2))]
    return np.array(
        [draw(st.one_of(st.none(), st.integers(), st.text(max_size=2), st.floats())) for _ in range(n * d)],
        dtype=object,
    ).reshape(n, d)


@st.composite
def label_arrays(draw, n: int):
    length = draw(st.sampled_from([n] * 8 + [max(n - 1, 0), n + 1]))
    kind = draw(
        st.sampled_from(["ints"] * 3 + ["strings"] * 2 + ["bools", "floats", "mixed", "2d", "one_class"])
    )
    if kind == "ints":
        k = draw(st.sampled_from([2, 2, 3, 1, 12]))
        return draw(hnp.arrays(np.int64, length, elements=st.integers(0, k - 1)))
    if kind == "strings":
        return np.array(
            draw(st.lists(st.sampled_from(["a", "b", "c", "", "ü"]), min_size=length, max_size=length)),
            dtype=object,
        )
    if kind == "bools":
        return draw(hnp.arrays(np.bool_, length))
    if kind == "floats":
        return draw(hnp.arrays(np.float64, length))
    if kind == "mixed":
        return np.array(
            draw(
                st.lists(
                    st.one_of(st.integers(0, 2), st.sampled_from(["a", "b"]), st.none()),
                    min_size=length,
                    max_size=length,
                )
            ),
            dtype=object,
        )
    if kind == "2d":
        return np.zeros((length, 2))
    return np.full(length, draw(st.sampled_from([0, 1, "yes"])))


split_sizes = st.one_of(st.floats(0.01, 0.99), st.sampled_from([0.25, 0.2, 0.5, 0.0, 1.0, 1.5, -0.5]))


@settings(SETTINGS, max_examples=int(400 * SCALE))
@given(data=st.data())
def test_make_split_succeeds_or_refuses(data):
    X = data.draw(feature_arrays(), label="X")
    n = len(X) if isinstance(X, list) else (X.shape[0] if X.ndim else 0)
    y = data.draw(label_arrays(n), label="y")
    kwargs = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "seed": st.integers(0, 2**32 - 1),
                "test_size": split_sizes,
                "val_size": split_sizes,
                "standardize": st.booleans(),
                "dtype": st.sampled_from(["float32", "float64"]),
                "evaluate_on_train": st.booleans(),
            },
        ),
        label="kwargs",
    )
    split = succeeds_or_refuses(make_split, X, y, **kwargs)
    if split is None:
        return
    # What a Split promises whenever one is made.
    assert split.n_classes >= 2 and len(split.class_names) == split.n_classes
    for part_X, part_y in (
        (split.X_train, split.y_train),
        (split.X_val, split.y_val),
        (split.X_test, split.y_test),
    ):
        assert part_X.ndim == 2 and part_X.shape == (len(part_y), split.n_features)
        assert len(part_y) > 0 and np.isfinite(part_X).all()
        assert part_y.min() >= 0 and part_y.max() < split.n_classes
    assert len(np.unique(split.y_train)) >= 2


# ------------------------------------------------------------------ TrainConfig + train

weird = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.integers(-(10**30), -1),
    st.sampled_from([0, -0.0, 10**30, 2**64, 1e308, -1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Values each field may validly take (and a few edge ones): most fields of a drawn
# config come from here, then up to three are replaced by something from WEIRD.
VALID = {
    "dataset": st.sampled_from(
        [
            "hours",
            "iris",
            "blobs",
            "digits",
            "breast_cancer",
            "synthetic:n=60,d=3",
            "synthetic:n=10,d=1",
            "synthetic:n=1e99,d=2",
            "synthetic:n=1e13",
        ]
    ),
    "impl": st.sampled_from(["numpy", "autograd", "module"]),
    "optimizer": st.sampled_from(["sgd", "momentum", "adam"]),
    "lr": st.one_of(st.none(), st.floats(1e-6, 10.0), st.sampled_from([1e30, 1e300, 5e-324, 3])),
    "momentum": st.one_of(st.none(), st.floats(0, 0.999)),
    "nesterov": st.booleans(),
    "betas": st.one_of(st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)), st.just([0.5, 0.5])),
    "eps": st.floats(1e-300, 1.0),
    "weight_decay": st.one_of(st.floats(0, 10), st.just(1e300)),
    "epochs": st.integers(1, 3),
    "batch_size": st.one_of(st.none(), st.integers(1, 10**30)),
    "device": st.sampled_from(["cpu", "auto"]),
    "dtype": st.sampled_from(["float32", "float64"]),
    "seed": st.integers(0, 2**32 - 1),
    "test_size": st.floats(0.01, 0.99),
    "val_size": st.floats(0.01, 0.99),
    "standardize": st.booleans(),
    "eval_every": st.integers(1, 10**30),
    "target_accuracy": st.one_of(st.none(), st.floats(0.01, 1.0)),
}
WEIRD = {
    "dataset": st.one_of(
        st.sampled_from(
            [
                "synthetic:n=inf",
                "synthetic:n=nan",
                "synthetic:d=-1",
                "synthetic:n=",
                "synthetic:x=3",
                "iris:n=3",
                "nope",
                "",
            ]
        ),
        st.text(max_size=12),
        weird,
    ),
    "data": st.one_of(st.sampled_from(["missing.csv", "", ".", "x.parquet"]), weird),
    "target": st.one_of(st.sampled_from(["label", ""]), weird),
    "device": st.one_of(st.just("cuda"), weird),
    "epochs": st.one_of(st.integers(-(10**30), 0), st.floats(), st.text(max_size=2), st.none()),
}


@st.composite
def config_fields(draw):
    fields = draw(st.fixed_dictionaries({}, optional=VALID))
    for name in draw(st.lists(st.sampled_from(sorted(VALID) + ["data", "target"]), max_size=3, unique=True)):
        fields[name] = draw(WEIRD.get(name, weird))
    return fields


@settings(SETTINGS, max_examples=int(300 * SCALE))
@given(fields=config_fields())
def test_train_config_and_train_succeed_or_refuse(fields):
    config = succeeds_or_refuses(TrainConfig, **fields)
    if config is None:
        return
    # Never a valid-but-huge run here: the property is about input, not patience.
    if config.epochs > 3 or (config.batch_size == 1 and config.epochs > 1):
        config = config.replace(epochs=1)
    if config.data is None:
        parsed = succeeds_or_refuses(parse_dataset, config.dataset)
        if parsed is None:  # the dataset name is checked when the split is loaded
            assert succeeds_or_refuses(train, config) is None
            return
        _, size = parsed
        n_values = size.get("n", 10_000) * size.get("d", 20)
        if 10**6 < n_values < 10**12:
            return  # a size the generator would really allocate: slow, not wrong
    params = config.to_params()
    assert set(params) == {f for f in TrainConfig.__dataclass_fields__}
    result = succeeds_or_refuses(train, config)
    if result is None:
        return
    assert result.status in ("completed", "diverged")
    assert result.timings["epochs_run"] <= config.epochs
    if result.status == "completed":
        assert all(math.isfinite(result.metrics[k]) for k in ("train_loss", "val_loss", "test_loss"))


# ------------------------------------------------------------------ read_table

CELLS = {
    "float": st.floats(-1e3, 1e3).map(repr),
    "int": st.integers(-5, 5).map(str),
    "bool": st.sampled_from(["True", "False"]),
    "str": st.sampled_from(["x", "y", "z"]),
    "odd": st.sampled_from(["", "nan", "inf", "-inf", "1e400", "-0", "x y", '"', "1,2", "True"]),
}


@st.composite
def csv_tables(draw):
    """A header and rows: mostly well formed, with odd cells, ragged rows and odd names mixed in."""
    names = draw(st.lists(st.sampled_from(["label", "a", "b", "c", "", "label"]), min_size=1, max_size=4))
    kinds = [draw(st.sampled_from(["float", "float", "int", "bool", "str", "odd"])) for _ in names]
    if "label" in names and draw(st.booleans()):
        kinds[names.index("label")] = draw(st.sampled_from(["int", "bool", "str"]))
    rows = [",".join(names)]
    for _ in range(draw(st.integers(0, 16))):
        cells = [draw(CELLS[k]) for k in kinds]
        if draw(st.integers(0, 19)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))] + draw(st.lists(CELLS["int"], max_size=2))
        rows.append(",".join(cells))
    return "\n".join(rows) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


csv_text = st.one_of(csv_tables(), csv_tables(), st.text(max_size=200))


@st.composite
def parquet_frames(draw):
    import pandas as pd

    n = draw(st.integers(0, 12))
    columns = {}
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3))
    for name in names + (["label"] if draw(st.integers(0, 4)) else []):
        kind = draw(st.sampled_from(["float", "float", "int", "bool", "str", "nullable", "datetime"]))
        if kind == "float":
            values = draw(st.lists(st.floats(width=32), min_size=n, max_size=n))
        elif kind == "int":
            values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
        elif kind == "bool":
            values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        elif kind == "str":
            values = draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=n, max_size=n))
        elif kind == "nullable":
            values = pd.array(
                draw(st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=n, max_size=n)), dtype="Int64"
            )
        else:
            values = pd.to_datetime(draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n)), unit="s")
        columns[name] = values
    return pd.DataFrame(columns, index=range(n))


@st.composite
def data_files(draw):
    """(content, suffix): CSV text, raw bytes or a DataFrame (written as Parquet), and a file suffix."""
    content = draw(
        st.one_of(
            csv_text.map(str.encode), csv_text.map(str.encode), st.binary(max_size=200), parquet_frames()
        )
    )
    usual = ".csv" if isinstance(content, bytes) else ".parquet"
    suffix = draw(st.sampled_from([usual] * 6 + [".csv", ".parquet", ".pq", ".CSV", ".txt", ""]))
    return content, suffix


@settings(SETTINGS, max_examples=int(300 * SCALE))
@given(file=data_files(), target=st.sampled_from(["label"] * 4 + ["a", "", "missing"]))
def test_read_table_succeeds_or_refuses(file, target):
    content, suffix = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content.to_parquet(path.with_suffix(".parquet"))
            path.with_suffix(".parquet").rename(path)
        out = succeeds_or_refuses(read_table, path, target)
        if out is None:
            return
        X, y, meta = out
        assert X.ndim == 2 and X.shape[0] == len(y) > 0 and X.shape[1] == len(meta["feature_names"]) > 0
        # The rest of the way to a Split refuses or succeeds too.
        succeeds_or_refuses(make_split, X, y, name=path.name, feature_names=meta["feature_names"])


def test_read_table_directory_and_missing_file(tmp_path):
    with pytest.raises(LogregError, match="is a directory"):
        read_table(tmp_path, "label")
    with pytest.raises(LogregError, match="not found"):
        read_table(tmp_path / "nope.csv", "label")
