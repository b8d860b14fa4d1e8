"""The Split a TrainConfig asks for: from the registry or the user's file, cached per process."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from logreg.data import libsvm
from logreg.data.files import read_table
from logreg.data.registry import (
    REGISTRY,
    check_dataset_name,
    check_task,
    is_file_dataset,
    model_task,
    parse_dataset,
)
from logreg.data.split import Split, make_split
from logreg.data.svmlight import read_svmlight
from logreg.errors import LogregError
from logreg.paths import is_svmlight


def _read(path: str, target: str | None, fmt: str | None, task: str, n_features: int | None):
    if is_svmlight(path, fmt):
        return read_svmlight(path, n_features, task=task)
    return read_table(path, target, task, fmt)


def _stack(train, test, data: str, test_data: str):
    """The rows of a training file, then its test file's, as one matrix (svmlight: as wide as
    the wider; tables: the same columns); the number of test rows."""
    import scipy.sparse as sp

    (X, y, meta), (X_test, y_test, test_meta) = train, test
    if sp.issparse(X) != sp.issparse(X_test):
        raise LogregError(f"Files '{data}' and '{test_data}' differ in format. Pass two files of one format.")
    if sp.issparse(X):
        width = max(X.shape[1], X_test.shape[1])
        X = sp.vstack([_widened(X, width), _widened(X_test, width)], format="csr")
    elif list(meta["feature_names"]) != list(test_meta["feature_names"]):
        raise LogregError(
            f"File '{test_data}' has other columns than '{data}' (its features must be the same, in "
            "the same order). Pass a test file with the training file's columns."
        )
    else:
        X = np.vstack([X, X_test])
    return X, np.concatenate([np.asarray(y), np.asarray(y_test)]), len(y_test)


def _widened(X, width: int):
    import scipy.sparse as sp

    return (
        X if X.shape[1] == width else sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], width))
    )


def _split_file(
    data: str,
    target: str | None,
    fmt: str | None,
    test_data: str | None,
    n_features: int | None,
    **split_args,
) -> Split:
    task = split_args.get("task", "classification")
    X, y, meta = train = _read(data, target, fmt, task, n_features)
    test_rows = 0
    if test_data is not None:
        X, y, test_rows = _stack(train, _read(test_data, target, fmt, task, n_features), data, test_data)
    source = f"file {data}" + (f" + {test_data}" if test_data else "")
    return make_split(
        X,
        y,
        name=Path(data).name,
        source=source,
        feature_names=meta["feature_names"],
        metadata=meta,
        test_rows=test_rows,
        **split_args,
    )


def _split_libsvm(dataset: str, seed: int, **split_args) -> Split:
    """A fetched LIBSVM dataset; its own test file (if any) is the test part."""
    X, y, meta = libsvm.load(dataset)
    info = libsvm.LIBSVM[dataset]
    source = f"LIBSVM {info.train_file}" + (f" + {info.test_file}" if info.test_file else "")
    return make_split(
        X, y, name=dataset, source=source, seed=seed, metadata=meta, test_rows=meta["test_rows"], **split_args
    )


def _split_registry(dataset: str, seed: int, **split_args) -> Split:
    if dataset in libsvm.LIBSVM:
        return _split_libsvm(dataset, seed, **split_args)
    name, kwargs = parse_dataset(dataset)
    info = REGISTRY[name]
    X, y, meta = info.make(seed, **kwargs)
    split = make_split(
        X,
        y,
        name=dataset,
        source=info.source,
        seed=seed,
        evaluate_on_train=info.evaluate_on_train,
        feature_names=meta.get("feature_names"),
        class_names=meta.get("class_names"),
        metadata={"probe": info.probe} if info.probe is not None else None,
        task=info.task,
        **split_args,
    )
    if "bayes_p" not in meta:
        return split
    # Accuracy of the Bayes-optimal rule sign(x . w*) on this test part, in expectation.
    p_test = meta["bayes_p"][split.metadata["test_index"]]
    bayes = float(np.maximum(p_test, 1 - p_test).mean())
    return dataclasses.replace(
        split, metadata={**split.metadata, "bayes_accuracy": bayes, "w_star": meta["w_star"]}
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
    task: str = "classification",
    fmt: str | None = None,
    test_data: str | None = None,
    n_features: int | None = None,
    test_mtime: float = 0.0,
) -> Split:
    split_args = {"test_size": test_size, "val_size": val_size, "standardize": standardize, "dtype": dtype}
    if data is not None:
        return _split_file(data, target, fmt, test_data, n_features, seed=seed, task=task, **split_args)
    if is_file_dataset(dataset):  # an svmlight file named as a dataset (an experiment's cell)
        return _split_file(dataset, None, None, None, None, seed=seed, task=task, **split_args)
    return _split_registry(dataset, seed, **split_args)


def load_split(config) -> Split:
    """The Split a TrainConfig asks for (cached: runs of a sweep share it; splits are immutable).

    Model 'linear' needs a regression dataset (numeric targets), the others a classification one.
    """
    model = getattr(config, "model", "logistic")
    if config.data is None:
        check_dataset_name(config.dataset)  # a file named as the dataset: there, and a regular file
        check_task(config.dataset, model)
    data, test_data = getattr(config, "data", None), getattr(config, "test_data", None)
    return _cached_split(
        config.dataset,
        data,
        config.target,
        config.seed,
        config.test_size,
        config.val_size,
        config.standardize,
        config.dtype,
        _mtime(data if data is not None else config.dataset if is_file_dataset(config.dataset) else None),
        model_task(model),
        getattr(config, "format", None),
        test_data,
        getattr(config, "n_features", None),
        _mtime(test_data),
    )


def _mtime(path: str | None) -> float:
    """A file's modification time: a changed file is read again, not taken from the cache."""
    return Path(path).stat().st_mtime if path is not None and Path(path).exists() else 0.0
