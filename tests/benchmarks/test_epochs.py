"""pytest-benchmark: one training epoch per implementation x {small, large} x device.

Outside the default test run; `nox -s bench` runs it (see docs/speed.md, "Benchmarks").
The device comes from LOGREG_BENCH_DEVICE (cpu by default, or cuda), so that each
device keeps its own baseline folder under results/benchmarks/<device>/.
CUDA work is synchronised inside the benchmarked function (pytest-benchmark reads
a wall clock). The tutorial loop and a plain reduction over a large buffer run
beside the epochs: the references of the speed goals.
"""

from __future__ import annotations

import os

import pytest
import torch

from logreg.bench.bandwidth import synchronize, time_read
from logreg.bench.goals import tutorial_loop
from logreg.bench.timing import make_model
from logreg.timing import set_torch_threads

DEVICE = os.environ.get("LOGREG_BENCH_DEVICE", "cpu")
# torch's CPU kernels use every core; on a shared machine whose other core is busy,
# a multi-threaded kernel waits for a descheduled thread and one epoch takes 10-100x
# longer (seen here: log_sigmoid_forward parallelises even 1200 elements). One thread
# keeps the baseline comparable; LOGREG_BENCH_TORCH_THREADS=0 (or auto) chooses from each
# dataset's size as `logreg train` does (logreg.timing.choose_threads).
_THREADS_ENV = os.environ.get("LOGREG_BENCH_TORCH_THREADS", "1").strip()
TORCH_THREADS = "auto" if _THREADS_ENV == "auto" else int(_THREADS_ENV)
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("LOGREG_BENCH_DEVICE=cuda but torch.cuda.is_available() is False", allow_module_level=True)

SIZES = {
    "small": "blobs",  # 1200 training rows x 2: per-call overhead
    "large": "synthetic:n=1000000,d=100",  # 600k x 100 float32: memory bandwidth (CPU)
}
if DEVICE == "cuda":
    SIZES["large"] = "synthetic:n=16666667,d=100"  # 10^7 training rows on the GPU
IMPLS = ["numpy", "autograd", "module"] if DEVICE == "cpu" else ["autograd", "module"]


@pytest.fixture(autouse=True, scope="module")
def _torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _split(dataset):
    from logreg.config import TrainConfig
    from logreg.data import load_split

    return load_split(TrainConfig(dataset=dataset))


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("impl", IMPLS)
def test_epoch(benchmark, impl, size):
    split = _split(SIZES[size])
    set_torch_threads(TORCH_THREADS, *split.X_train.shape)
    model = make_model(impl, DEVICE, "float32", split.n_features, None, "momentum")
    data = model.put(split.X_train, split.y_train)
    before = model.get_params()[0].copy()

    def epoch():
        model.train_epoch(data, None)
        model.synchronize()  # CUDA: the kernels are done before the clock is read

    benchmark.extra_info.update(
        device=DEVICE, dataset=SIZES[size], rows=len(split.y_train), torch_threads=torch.get_num_threads()
    )
    benchmark.pedantic(epoch, rounds=30 if size == "large" else 300, warmup_rounds=3)
    assert (model.get_params()[0] != before).any()  # the epochs really trained


def test_tutorial_loop_epoch(benchmark):
    """The classic tutorial epoch on blobs (2->5->1 Linear + Sigmoid, BCELoss, SGD momentum), CPU."""
    split = _split("blobs")
    set_torch_threads(TORCH_THREADS, *split.X_train.shape)
    epoch = tutorial_loop(split.X_train, split.y_train)
    benchmark.pedantic(epoch, rounds=300, warmup_rounds=3)


def test_read_bandwidth_reduction(benchmark):
    """One sum over the bandwidth buffer (256 MiB CPU, 2 GiB CUDA): the roofline's denominator."""

    def read():
        time_read(DEVICE)
        synchronize(DEVICE)

    benchmark.pedantic(read, rounds=30, warmup_rounds=2)
    benchmark.extra_info.update(device=DEVICE, bytes=time_read(DEVICE)[1])
