"""`logreg throughput`: the timing loop, the roofline arithmetic, tracking, bad input (tiny sizes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from logreg.bench import goals, timing
from logreg.bench import throughput as tp
from logreg.bench import time_to_target as ttt
from logreg.bench.bandwidth import read_bandwidth, time_read
from logreg.errors import LogregError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("impl", ["numpy", "autograd", "module"])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_run_cell_reports_consistent_roofline_figures(impl, batch_size):
    X, y = timing.synthetic_xy(500, 7, seed=0, dtype="float32")
    row = tp.run_cell(impl, "cpu", X, y, "float32", batch_size, warmup=1, repeats=3)
    assert row["batch_size"] == (batch_size or "full")
    assert row["bytes_per_epoch"] == 500 * 7 * 4
    assert row["epoch_seconds_min"] <= row["epoch_seconds_median"]
    assert row["samples_per_second"] == pytest.approx(500 / row["epoch_seconds_median"])
    assert row["effective_bandwidth_gbs"] == pytest.approx(
        row["bytes_per_epoch"] / row["epoch_seconds_median"] / 1e9
    )
    assert row["bandwidth_fraction"] * row["roofline_ratio"] == pytest.approx(1.0)
    assert row["bandwidth_fraction"] == pytest.approx(
        row["effective_bandwidth_gbs"] / row["device_bandwidth_gbs"]
    )
    assert math.isfinite(row["device_bandwidth_gbs"]) and row["device_bandwidth_gbs"] > 0


def test_timed_epochs_train_the_model():
    X, y = timing.synthetic_xy(400, 5, seed=1, dtype="float64")
    model = timing.make_model("module", "cpu", "float64", 5, 32)
    data = model.put(X, y)
    before = model.evaluate(data)[0]
    epoch, side, times = timing.time_epochs(
        model, data, 400, 32, "cpu", warmup=1, repeats=4, interleave=lambda: 2.0
    )
    assert len(times) == 4 and epoch == pytest.approx(float(np.median(times)))
    assert side == 2.0
    assert model.evaluate(data)[0] < before


def test_read_bandwidth_is_positive_and_uses_the_whole_buffer():
    seconds, nbytes = time_read("cpu", 8 * 1024 * 1024)
    assert nbytes == 8 * 1024 * 1024 and seconds > 0
    assert read_bandwidth("cpu", repeats=2, nbytes=8 * 1024 * 1024) > 1e8  # > 0.1 GB/s anywhere


def test_cli_runs_the_grid_without_tracking(run_cli, tmp_path):
    status, out, err = run_cli(
        "throughput",
        "--sizes",
        "100,200",
        "--dims",
        "3",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--batch-size",
        "64",
        "--no-track",
        "--out",
        tmp_path,
    )
    assert status == 0, err
    lines = [line for line in out.splitlines() if "samples/s" in line]
    assert len(lines) == 2 * 3 * 2  # sizes x impls x (full, mini-batch)
    assert any("__numpy__cpu__b64" in line for line in lines)
    csv_text = (tmp_path / "throughput_cpu.csv").read_text()
    assert csv_text.count("\n") == 13 and "roofline_ratio" in csv_text.splitlines()[0]


def test_cli_logs_runs_to_mlflow(run_cli, tmp_path):
    from logreg.tracking import search_runs

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    status, _, err = run_cli(
        "throughput",
        "--sizes",
        "100",
        "--dims",
        "4",
        "--impls",
        "numpy,module",
        "--repeats",
        "2",
        "--batch-size",
        "0",
        "--tracking-uri",
        uri,
    )
    assert status == 0, err
    runs = search_runs(uri, ["throughput"])
    assert sorted(runs["params.impl"]) == ["module", "numpy"]
    assert set(runs["params.batch_size"]) == {"full"}
    assert set(runs["tags.logreg.device_kind"]) == {"cpu"}
    assert (runs["metrics.samples_per_second"] > 0).all()
    assert set(runs["status"]) == {"FINISHED"}
    assert "synthetic-n100-d4__numpy__cpu__full" in set(runs["tags.mlflow.runName"])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--sizes", "5"], r"'sizes' parameter must be a list of ints >= 10"),
        (["--sizes", "1e3,abc"], r"comma-separated list of whole numbers"),
        (["--impls", "jax"], r"'impls' parameter must be a list of numpy, autograd, module"),
        (["--devices", "tpu"], r"'devices' parameter must be a list of cpu, cuda"),
        (["--dtype", "float16"], r"'dtype' parameter must be one of float32, float64"),
        (["--repeats", "0"], r"'repeats' parameter must be an int >= 1"),
        (["--torch-threads", "-1"], r"'torch_threads' parameter must be an int >= 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(run_cli, args, match):
    import re

    status, _, err = run_cli("throughput", "--no-track", *args)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and re.search(match, err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_bad_input():
    with pytest.raises(LogregError, match=r"torch.cuda.is_available\(\) is False"):
        tp.ThroughputConfig(devices=("cpu", "cuda"))


def test_sizes_default_per_device():
    cfg = tp.ThroughputConfig()
    assert cfg.sizes_for("cpu") == (10**3, 10**4, 10**5, 10**6)
    assert cfg.sizes_for("cuda")[-1] == 10**7
    assert tp.ThroughputConfig(sizes=(50,)).sizes_for("cuda") == (50,)


def test_small_data_overhead_measures_all_four_side_by_side():
    eager = [v for v in goals.VARIANTS if not v[1]]  # the compiled ones compile for seconds
    rows = goals.small_data_overhead(rounds=1, epochs=5, echo=lambda s: None, variants=eager)
    assert [r["impl"] for r in rows] == ["tutorial", "numpy", "autograd", "module"]
    assert rows[0]["ours_over_tutorial"] == pytest.approx(1.0)
    assert all(r["epoch_us_median"] > 0 and r["torch_threads"] == 1 for r in rows)


def test_time_to_target_table(tmp_path):
    rows = ttt.time_to_target(
        dataset="synthetic:n=3000,d=5", impls=("numpy",), max_epochs=2, echo=lambda s: None
    )
    lbfgs = rows[0]
    assert lbfgs["optimizer"] == "LogisticRegression(lbfgs)" and lbfgs["ratio_to_lbfgs"] == 1.0
    assert rows[0]["target_accuracy"] == pytest.approx(lbfgs["test_accuracy"] - 0.002)
    ours = [r for r in rows if r["impl"] == "numpy"]
    assert len(ours) == sum(len(v) for v in ttt.TTT_SETTINGS.values())
    assert all(r["test_accuracy"] >= r["target_accuracy"] for r in ours if r["reached"])
    ttt.write_time_to_target(rows, tmp_path, "synthetic:n=3000,d=5")
    md = (tmp_path / "time_to_target.md").read_text()
    assert "| numpy | adam |" in md and "LogisticRegression(lbfgs)" in md


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("impl", ["autograd", "module"])
def test_run_cell_on_cuda(impl):
    X, y = timing.synthetic_xy(2000, 8, seed=0, dtype="float32")
    row = tp.run_cell(impl, "cuda", X, y, "float32", None, warmup=1, repeats=3)
    assert row["device"] == "cuda" and row["samples_per_second"] > 0
    assert 0 < row["bandwidth_fraction"] < 10


def test_numpy_full_batch_split_across_cores_gives_the_serial_gradient(monkeypatch):
    """The threaded full-batch path (large data) must match the serial one and autograd."""
    import logreg.impls.base as impls
    import logreg.impls.numpy_impl as numpy_impl

    X, y = timing.synthetic_xy(3000, 6, seed=3, dtype="float64")
    monkeypatch.setattr(impls, "CPU_BLOCK_BYTES", 64 * 7 * 8)  # 64-row blocks: 47 of them
    monkeypatch.setattr(numpy_impl, "_CORES", 2)  # two parts even on a one-core machine
    params = {}
    for name, min_blocks in (("threads", 1), ("serial", 10**9)):
        monkeypatch.setattr(numpy_impl, "MIN_BLOCKS_PER_THREAD", min_blocks)
        model = timing.make_model("numpy", "cpu", "float64", 6, None, "adam")
        data = model.put(X, y)
        for _ in range(3):
            model.train_epoch(data, None)
        params[name] = np.concatenate([p.ravel() for p in model.get_params()])
    reference = timing.make_model("autograd", "cpu", "float64", 6, None, "adam")
    data = reference.put(X, y)
    for _ in range(3):
        reference.train_epoch(data, None)
    expected = np.concatenate([p.ravel() for p in reference.get_params()])
    np.testing.assert_allclose(params["threads"], params["serial"], rtol=1e-12)
    np.testing.assert_allclose(params["threads"], expected, rtol=1e-9)
    initial = timing.make_model("numpy", "cpu", "float64", 6, None, "adam").W1.ravel()
    assert not np.allclose(params["threads"], initial)  # the epochs did train


def test_small_data_modes_time_each_mode_and_report_a_refused_one_in_its_row(tmp_path):
    # On the CPU: eager rows are timed; a CUDA graph cannot be captured without CUDA, which is a row
    # with its error, not the end of the run. The GPU's table is written from the same rows.
    from logreg.bench.small_gpu import small_data_modes

    rows = small_data_modes("cpu", datasets=("iris",), modes=("eager", "graph"), epochs=5, rounds=2, echo=str)
    eager, graph = rows[0], rows[1]
    assert (eager["mode"], graph["mode"]) == ("eager", "graph") and len(rows) == 4
    assert eager["epoch_us_median"] > 0 and eager["error"] == "" and eager["speedup_over_eager"] == 1.0
    assert graph["error"] and math.isnan(graph["epoch_us_median"])
    md = goals.goals_markdown("cuda", [], rows, "logreg throughput --goals --devices cuda")
    assert "| iris (" in md and "| graph |" in md and "same_as_eager" in md


@CUDA
@pytest.mark.cuda
def test_a_replayed_cuda_graph_trains_as_the_eager_epochs_do():
    from logreg.bench.small_gpu import small_data_modes

    rows = small_data_modes(
        "cuda", datasets=("iris",), modes=("eager", "graph"), epochs=20, rounds=2, echo=str
    )
    for row in rows:
        assert row["error"] == "", row
    assert all(r["same_as_eager"] is True for r in rows if r["mode"] == "graph")
