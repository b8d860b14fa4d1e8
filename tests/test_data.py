"""Datasets: CSV/Parquet loading, label encoding, the stratified seeded split, standardisation,
the registry's special cases (hours, synthetic) and end-to-end determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from logreg import TrainConfig, load_split, make_split, train
from logreg.config import IMPL_NAMES

pytestmark = pytest.mark.usefixtures("single_thread")


def _features(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(5.0, 2.0, n), "b": rng.normal(-3.0, 0.5, n), "c": rng.integers(0, 10, n)}


# ---------------------------------------------------------------- files and labels


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("labels", "class_names"),
    [
        ([0, 1], ("0", "1")),
        ([False, True], ("False", "True")),
        (["spam", "ham"], ("ham", "spam")),  # sorted: ham -> 0, spam -> 1
        (["setosa", "versicolor", "virginica"], ("setosa", "versicolor", "virginica")),
    ],
    ids=["zero-one", "booleans", "strings", "three-strings"],
)
def test_table_files_load_and_train(write_table, suffix, labels, class_names):
    n = 120
    cols = _features(n)
    raw = np.array([labels[i % len(labels)] for i in range(n)], dtype=object)
    if isinstance(labels[0], bool):
        raw = raw.astype(bool)
    elif isinstance(labels[0], int):
        raw = raw.astype(np.int64)
    cols["label"] = raw
    path = write_table(cols, "table" + suffix)
    config = TrainConfig(data=str(path), target="label", epochs=5, optimizer="sgd")
    split = load_split(config)
    assert split.class_names == class_names
    assert split.n_classes == len(labels)
    assert split.feature_names == ("a", "b", "c")
    assert split.n_samples == n and split.n_features == 3
    assert split.name == path.name
    # The recorded mapping: class index i stands for the label class_names[i].
    X_all = np.column_stack([cols["a"], cols["b"], cols["c"]])
    raw_test = np.asarray(raw)[split.metadata["test_index"]]
    assert [split.class_names[i] for i in split.y_test] == [str(v) for v in raw_test]
    np.testing.assert_allclose(
        split.X_test, split.transform(X_all[split.metadata["test_index"]]), rtol=1e-5, atol=1e-5
    )
    result = train(config)
    W, b = result.weights
    # Binary: one logit (sigmoid); more classes: one logit per class (softmax).
    assert W.shape == (3, 1 if len(labels) == 2 else len(labels)) and b.shape == (W.shape[1],)
    assert result.predict_proba(X_all[:4]).shape == (4, len(labels))


def test_boolean_feature_columns_are_numbers(write_table):
    cols = _features(60)
    cols["flag"] = np.arange(60) % 3 == 0
    cols["y"] = np.arange(60) % 2
    split = load_split(TrainConfig(data=str(write_table(cols)), target="y"))
    assert split.feature_names == ("a", "b", "c", "flag")
    assert split.n_features == 4


def test_csv_and_parquet_give_the_same_split(write_table):
    cols = _features(200, seed=3)
    cols["label"] = np.where(cols["a"] > 5, "yes", "no")
    splits = [
        load_split(TrainConfig(data=str(write_table(cols, name)), target="label", dtype="float64"))
        for name in ("same.csv", "same.parquet")
    ]
    for attr in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_allclose(getattr(splits[0], attr), getattr(splits[1], attr), rtol=1e-12)


# ---------------------------------------------------------------- split


@pytest.mark.parametrize("dataset", ["breast_cancer", "digits", "classification"])
def test_split_is_stratified(dataset):
    split = load_split(TrainConfig(dataset=dataset))
    y_all = np.concatenate([split.y_train, split.y_val, split.y_test])
    for c in range(split.n_classes):
        n_c = int(np.sum(y_all == c))
        # test_size 0.25 of each class, then val_size 0.2 of the rest: within one row (rounding).
        n_test = int(np.sum(split.y_test == c))
        n_val = int(np.sum(split.y_val == c))
        assert abs(n_test - 0.25 * n_c) <= 1
        assert abs(n_val - 0.2 * (n_c - n_test)) <= 1
    assert len(y_all) == split.n_samples


def test_split_parts_are_disjoint_and_cover_the_data():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(500.0), rng.normal(size=500)])  # column 0 identifies the row
    y = rng.integers(0, 3, 500)
    split = make_split(X, y, standardize=False, dtype="float64", seed=1)
    ids = [part[:, 0].astype(int) for part in (split.X_train, split.X_val, split.X_test)]
    everything = np.concatenate(ids)
    assert len(everything) == 500 and set(everything) == set(range(500))
    for part_ids, part_y in zip(ids, (split.y_train, split.y_val, split.y_test), strict=True):
        np.testing.assert_array_equal(part_y, y[part_ids])  # rows keep their labels


def test_split_is_seeded():
    X, y = np.random.default_rng(0).normal(size=(300, 4)), np.arange(300) % 2
    a, b = make_split(X, y, seed=7), make_split(X, y, seed=7)
    c = make_split(X, y, seed=8)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.metadata["test_index"], b.metadata["test_index"])
    assert not np.array_equal(a.metadata["test_index"], c.metadata["test_index"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_standardisation_uses_training_statistics_only(dtype):
    rng = np.random.default_rng(2)
    X = rng.normal([10.0, -4.0, 0.0], [3.0, 0.1, 50.0], size=(2000, 3))
    y = (X[:, 0] + rng.normal(size=2000) > 10).astype(int)
    split = make_split(X, y, dtype=dtype, seed=0)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0.0, atol=tol)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1.0, atol=tol)
    # The validation and test parts are transformed with the same statistics, so theirs are
    # close to but not exactly 0 / 1; and the statistics are not those of all rows.
    for part in (split.X_val, split.X_test):
        assert 0 < np.abs(part.mean(axis=0)).max() < 0.2
        assert 0 < np.abs(part.std(axis=0) - 1).max() < 0.2
    assert not np.allclose(split.mean, X.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(split.X_test, split.transform(X[split.metadata["test_index"]]), atol=tol)


def test_constant_feature_stays_finite():
    X = np.column_stack([np.ones(100), np.arange(100.0)])
    split = make_split(X, np.arange(100) % 2)
    assert np.isfinite(split.X_train).all()
    np.testing.assert_array_equal(split.X_train[:, 0], 0.0)


def test_no_standardisation_keeps_raw_values():
    X = np.random.default_rng(0).normal(7.0, 2.0, (100, 2))
    split = make_split(X, np.arange(100) % 2, standardize=False, dtype="float64")
    np.testing.assert_array_equal(split.X_test, X[split.metadata["test_index"]])


def test_split_arrays_are_read_only():
    split = load_split(TrainConfig(dataset="iris"))
    with pytest.raises(ValueError, match="read-only"):
        split.X_train[0, 0] = 1.0


# ---------------------------------------------------------------- registry


def test_hours_is_evaluated_on_its_training_points():
    split = load_split(TrainConfig(dataset="hours"))
    assert split.n_features == 1 and len(split.y_train) == 3
    for X, y in ((split.X_val, split.y_val), (split.X_test, split.y_test)):
        np.testing.assert_array_equal(X, split.X_train)
        np.testing.assert_array_equal(y, split.y_train)
    np.testing.assert_allclose(split.transform([[1.0], [2.0], [3.0]])[:, 0], split.X_train[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(split.y_train, [0, 0, 1])


@pytest.mark.parametrize(
    ("spec", "n", "d"), [("synthetic:n=1000,d=7", 1000, 7), ("synthetic:n=2e3,d=3", 2000, 3)]
)
def test_synthetic_shape(spec, n, d):
    split = load_split(TrainConfig(dataset=spec))
    assert split.n_samples == n and split.n_features == d
    assert split.metadata["w_star"].shape == (d,)
    assert math.isclose(np.linalg.norm(split.metadata["w_star"]), 2.0)


def test_synthetic_default_size():
    split = load_split(TrainConfig(dataset="synthetic"))
    assert (split.n_samples, split.n_features) == (10_000, 20)


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_synthetic_bayes_accuracy_bounds_a_trained_model(impl):
    config = TrainConfig(dataset="synthetic:n=20000,d=20", impl=impl, epochs=50)
    result = train(config)
    bayes = result.split.metadata["bayes_accuracy"]
    n_test = len(result.split.y_test)
    # bayes_accuracy is the expected accuracy of the Bayes rule on this test part; a finite test
    # part lets any classifier beat it by chance: 3 standard errors.
    tolerance = 3 * math.sqrt(bayes * (1 - bayes) / n_test)
    assert 0.75 < bayes < 0.85  # about 0.80 for |w*| = 2 (README)
    accuracy = result.metrics["test_accuracy"]
    assert accuracy <= bayes + tolerance
    # 12000 training rows, 21 parameters: the fit is close to the Bayes rule.
    assert accuracy >= bayes - 0.03


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_same_seed_same_results(impl):
    def run(seed):
        config = TrainConfig(
            dataset="breast_cancer", impl=impl, optimizer="adam", epochs=4, batch_size=32, seed=seed
        )
        return train(config)

    def maths(result):  # the history without its clock (train_seconds)
        return {k: v for k, v in result.history.items() if k != "train_seconds"}

    a, b, c = run(3), run(3), run(4)
    assert maths(a) == maths(b)  # exactly equal, every value
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert a.history["train_loss"] != c.history["train_loss"]


def test_missing_labels_are_refused(write_table):
    from logreg import LogregError

    cols = _features(20)
    cols["label"] = pd.Series(["a", "b"] * 9 + [None, None], dtype=object)
    path = write_table(cols)
    with pytest.raises(LogregError, match=r"target column 'label' .* has 2 missing values"):
        load_split(TrainConfig(data=str(path), target="label"))
