"""The Split a TrainConfig asks for: from the registry or the user's file, cached per process."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from logreg.data import libsvm
from logreg.data.files import read_table
from logreg.data.registry import REGISTRY, check_task, model_task, parse_dataset
from logreg.data.split import Split, make_split
from logreg.data.svmlight import read_svmlight
from logreg.paths import is_svmlight


def _split_file(data: str, target: str | None, fmt: str | None, **split_args) -> Split:
    task = split_args.get("task", "classification")
    if is_svmlight(data, fmt):
        X, y, meta = read_svmlight(data, task=task)
    else:
        X, y, meta = read_table(data, target, task, fmt)
    return make_split(
        X,
        y,
        name=Path(data).name,
        source=f"file {data}",
        feature_names=meta["feature_names"],
        metadata=meta,
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
) -> Split:
    split_args = {"test_size": test_size, "val_size": val_size, "standardize": standardize, "dtype": dtype}
    if data is not None:
        return _split_file(data, target, fmt, seed=seed, task=task, **split_args)
    return _split_registry(dataset, seed, **split_args)


def load_split(config) -> Split:
    """The Split a TrainConfig asks for (cached: runs of a sweep share it; splits are immutable).

    Model 'linear' needs a regression dataset (numeric targets), the others a classification one.
    """
    model = getattr(config, "model", "logistic")
    if config.data is None:
        check_task(config.dataset, model)
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
        model_task(model),
        getattr(config, "format", None),
    )
