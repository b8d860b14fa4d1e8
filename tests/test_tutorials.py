"""The tutorials' claims, reproduced by every implementation."""

from __future__ import annotations

import numpy as np
import pytest

from logreg import TrainConfig, train
from logreg.config import IMPL_NAMES

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_blobs_momentum_passes_97_percent_within_10_epochs(impl):
    # The tutorial loop: SGD with momentum 0.9, lr 0.01, full batch, two Gaussian blobs.
    config = TrainConfig(dataset="blobs", impl=impl, optimizer="momentum", lr=0.01, momentum=0.9, epochs=10)
    result = train(config)
    accuracy = result.history["train_accuracy"]
    assert result.history["epoch"] == list(range(1, 11))
    assert max(accuracy) >= 0.97, accuracy
    assert accuracy[-1] >= 0.97
    # It is a claim about training: the first epoch is not already there.
    assert accuracy[0] < 0.97


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("impl", IMPL_NAMES)
def test_hours_predicts_a_pass_at_4_hours(impl, optimizer):
    # 1 and 2 hours fail, 3 hours pass: 4 hours, beyond the boundary, predicts a pass.
    result = train(TrainConfig(dataset="hours", impl=impl, optimizer=optimizer))
    p_pass = result.metrics["p_pass_at_4_hours"]
    assert p_pass > 0.5
    proba = result.predict_proba([[4.0]])
    assert proba.shape == (1, 2)
    assert proba[0, 1] == pytest.approx(p_pass, rel=1e-12)
    assert proba[0].sum() == pytest.approx(1.0)
    # And the training points themselves are classified right (raw hours in, fail/fail/pass out).
    np.testing.assert_array_equal(result.predict_proba([[1.0], [2.0], [3.0]]).argmax(axis=1), [0, 0, 1])
    assert result.metrics["train_accuracy"] == 1.0


def test_p_pass_is_only_reported_for_hours():
    assert "p_pass_at_4_hours" not in train(TrainConfig(dataset="iris", epochs=2)).metrics
