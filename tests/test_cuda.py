"""CUDA against the CPU (`-m cuda`; skipped where torch sees no GPU): the same float64 training.

The reference is this suite's CPU path, itself tested against scikit-learn and closed forms
elsewhere: on the GPU, autograd and module must give the CPU's loss history within 1e-9
(relative) for every optimizer, full batch and mini-batch, and every model.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from logreg import TrainConfig, load_split, train
from logreg.config import OPTIMIZER_NAMES

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CASES = [("iris", "logistic", {}), ("diabetes", "linear", {"lr": 0.05}), ("moons", "mlp", {"hidden": 8})]


@pytest.mark.parametrize(("dataset", "model", "extra"), CASES, ids=[c[1] for c in CASES])
def test_cuda_trains_as_the_cpu_does_in_float64(dataset, model, extra):
    split = load_split(TrainConfig(dataset=dataset, model=model, dtype="float64"))
    for impl, optimizer, batch in itertools.product(("autograd", "module"), OPTIMIZER_NAMES, (None, 16)):
        kw = {"dataset": dataset, "model": model, "impl": impl, "optimizer": optimizer, "batch_size": batch,
              "dtype": "float64", "epochs": 10, **extra}  # fmt: skip
        if model == "linear" and optimizer == "adam":
            kw["lr"] = 5.0
        cpu = train(TrainConfig(**kw), split=split)
        gpu = train(TrainConfig(**kw, device="cuda"), split=split)
        assert gpu.device == "cuda"
        np.testing.assert_allclose(
            gpu.history["train_loss"],
            cpu.history["train_loss"],
            rtol=1e-9,
            err_msg=f"{impl} {optimizer} {batch}",
        )


def test_cuda_float32_reaches_the_cpus_accuracy():
    split = load_split(TrainConfig(dataset="digits"))
    for impl in ("autograd", "module"):
        cpu = train(TrainConfig(dataset="digits", impl=impl), split=split)
        gpu = train(TrainConfig(dataset="digits", impl=impl, device="cuda"), split=split)
        assert abs(gpu.metrics["test_accuracy"] - cpu.metrics["test_accuracy"]) <= 0.01
