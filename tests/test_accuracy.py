"""Accuracy regression thresholds: every dataset x impl x optimizer reaches its committed floor.

results/accuracy_reference.toml holds, per cell, the reference hyperparameters and the minimum
test accuracy, each justified there as scikit-learn's test accuracy on the same split minus a
stated margin. scikit-learn is refitted here, live, and must itself still reach its committed
floor, so a change in the data, the split or the reference cannot slip by unnoticed.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest

from logreg import TrainConfig, train
from logreg.config import IMPL_NAMES, OPTIMIZER_NAMES
from logreg.data import REGISTRY, parse_dataset

pytestmark = pytest.mark.usefixtures("single_thread")

REFERENCE_FILE = Path(__file__).resolve().parent.parent / "results" / "accuracy_reference.toml"
with REFERENCE_FILE.open("rb") as _f:
    REFERENCE = tomllib.load(_f)
DATASETS = list(REFERENCE["datasets"])
CELLS = [
    (dataset, impl, optimizer)
    for dataset, impls in REFERENCE["cells"].items()
    for impl, optimizers in impls.items()
    for optimizer in optimizers
]


def test_reference_covers_every_builtin_dataset_impl_and_optimizer():
    assert {parse_dataset(d)[0] for d in DATASETS} == set(REGISTRY)
    expected = set(itertools.product(DATASETS, IMPL_NAMES, OPTIMIZER_NAMES))
    assert set(CELLS) == expected
    assert len(CELLS) == len(REGISTRY) * 9 == 63


@pytest.mark.parametrize("dataset", DATASETS)
def test_thresholds_follow_from_the_sklearn_floor(dataset):
    ref = REFERENCE["datasets"][dataset]
    # The floor sits at or below the recorded reference, one test point lower (rounded down to
    # three decimals).
    assert ref["sklearn_test_accuracy"] - 1 / ref["n_test"] - 0.001 <= ref["sklearn_floor"]
    assert ref["sklearn_floor"] <= ref["sklearn_test_accuracy"] + 1e-4
    assert 0 <= ref["margin"] <= 0.1
    for impl, optimizer in itertools.product(IMPL_NAMES, OPTIMIZER_NAMES):
        cell = REFERENCE["cells"][dataset][impl][optimizer]
        # No cell is looser than the stated justification (cells may be stricter).
        assert cell["min_test_accuracy"] >= ref["sklearn_floor"] - ref["margin"] - 1e-9
        assert cell["batch_size"] == "full" or isinstance(cell["batch_size"], int)


@pytest.mark.parametrize("dataset", DATASETS)
def test_sklearn_reference_reaches_its_committed_floor(dataset, sklearn_test_accuracy):
    ref = REFERENCE["datasets"][dataset]
    live = sklearn_test_accuracy(dataset)
    assert live >= ref["sklearn_floor"], (
        f"scikit-learn's reference on {dataset} fell to {live:.4f} < floor {ref['sklearn_floor']}: "
        "the data or split changed; re-derive results/accuracy_reference.toml"
    )


@pytest.mark.parametrize(("dataset", "impl", "optimizer"), CELLS, ids=["-".join(c) for c in CELLS])
def test_reaches_committed_test_accuracy(dataset, impl, optimizer, sklearn_test_accuracy):
    ref = REFERENCE["datasets"][dataset]
    cell = REFERENCE["cells"][dataset][impl][optimizer]
    # The reference the threshold stands on is checked too (cached: once per dataset).
    assert sklearn_test_accuracy(dataset) >= ref["sklearn_floor"]
    config = TrainConfig(
        dataset=dataset,
        impl=impl,
        optimizer=optimizer,
        lr=cell["lr"],
        momentum=cell["momentum"],
        epochs=cell["epochs"],
        batch_size=None if cell["batch_size"] == "full" else cell["batch_size"],
        eval_every=cell["epochs"],
    )
    result = train(config)
    assert result.status == "completed", result.message
    assert len(result.split.y_test) == ref["n_test"]
    accuracy = result.metrics["test_accuracy"]
    assert accuracy >= cell["min_test_accuracy"], (
        f"{dataset} {impl} {optimizer}: test accuracy {accuracy:.4f} < {cell['min_test_accuracy']} "
        f"(scikit-learn {sklearn_test_accuracy(dataset):.4f} - margin {ref['margin']})"
    )
