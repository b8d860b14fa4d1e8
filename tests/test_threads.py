"""torch's CPU threads: chosen from the problem size by default, --torch-threads overrides it
everywhere (train, the Python API, the estimator, sweeps, throughput), and the count is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from logreg import timing
from logreg.bench import throughput as tp
from logreg.bench.timing import synthetic_xy
from logreg.config import TrainConfig
from logreg.errors import LogregError
from logreg.sklearn import LogregClassifier
from logreg.train import train


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def quiet(monkeypatch):
    """No other process busy (the load average is the machine's, not this test's to set)."""
    monkeypatch.setattr(timing, "busy_elsewhere", lambda: 0.0)


def test_auto_takes_one_thread_below_the_cutoff_and_every_core_above(quiet):
    cutoff = timing.THREADS_CUTOFF_ELEMENTS
    cores = timing.available_cores()
    assert timing.choose_threads(0, 1200, 2) == 1
    assert timing.choose_threads("auto", cutoff // 100 - 1, 100) == 1
    assert timing.choose_threads(0, cutoff // 100, 100) == cores
    assert timing.choose_threads("auto", 10**6, 100) == cores


def test_auto_leaves_the_cores_other_processes_hold(monkeypatch):
    monkeypatch.setattr(timing, "available_cores", lambda: 8)
    monkeypatch.setattr(timing, "busy_elsewhere", lambda: 2.8)
    assert timing.choose_threads(0, 10**6, 100) == 5
    monkeypatch.setattr(timing, "busy_elsewhere", lambda: 30.0)
    assert timing.choose_threads(0, 10**6, 100) == 1
    assert timing.choose_threads(0, 10, 2) == 1


def test_an_explicit_count_overrides_the_size(monkeypatch):
    monkeypatch.setattr(timing, "available_cores", lambda: 4)
    assert timing.choose_threads(3, 10, 2) == 3
    assert timing.choose_threads(1, 10**6, 100) == 1


def test_an_explicit_count_above_the_cores_is_capped_with_a_warning(monkeypatch):
    from logreg.errors import LogregWarning

    monkeypatch.setattr(timing, "available_cores", lambda: 2)
    with pytest.warns(LogregWarning, match=r"--torch-threads 10000 is more than the 2 cores .*; using 2\."):
        assert timing.choose_threads(10_000, 10, 2) == 2


@pytest.mark.parametrize("bad", [-1, 1.5, "all", True])
def test_bad_thread_counts_are_one_line_errors(bad):
    with pytest.raises(
        LogregError, match=r"The 'torch_threads' parameter must be an int >= 0 or one of auto\. Got"
    ):
        timing.choose_threads(bad, 10, 2)
    with pytest.raises(LogregError, match="'torch_threads' parameter"):
        TrainConfig(torch_threads=bad)


def test_auto_is_zero_in_the_config():
    assert TrainConfig(torch_threads="auto").torch_threads == 0
    assert TrainConfig().to_params()["torch_threads"] == 0


@pytest.mark.parametrize("impl", ["autograd", "module"])
def test_train_records_the_chosen_count(impl):
    torch.set_num_threads(2)
    result = train(TrainConfig(impl=impl, dataset="blobs", epochs=2))  # 1200 x 2: small
    assert result.timings["torch_threads"] == 1 == torch.get_num_threads()
    assert result.to_dict()["config"]["torch_threads"] == 0


def test_train_takes_every_core_above_the_cutoff(monkeypatch, quiet):
    monkeypatch.setattr(timing, "THREADS_CUTOFF_ELEMENTS", 100)  # blobs is then "large"
    result = train(TrainConfig(impl="autograd", dataset="blobs", epochs=2))
    assert result.timings["torch_threads"] == timing.available_cores() == torch.get_num_threads()


def test_train_override_is_used_and_recorded():
    result = train(TrainConfig(impl="module", dataset="blobs", epochs=2, torch_threads=2))
    assert result.timings["torch_threads"] == 2 == torch.get_num_threads()


def test_numpy_records_no_torch_threads():
    assert "torch_threads" not in train(TrainConfig(impl="numpy", dataset="blobs", epochs=2)).timings


def test_cli_flag_accepts_a_count_or_auto(run_cli):
    import json

    status, out, _ = run_cli("train", "--impl", "autograd", "--epochs", "2", "--torch-threads", "2", "--json")
    assert status == 0
    result = json.loads(out)
    assert result["config"]["torch_threads"] == 2 and result["timings"]["torch_threads"] == 2
    status, out, _ = run_cli("train", "--impl", "autograd", "--epochs", "2", "--torch-threads", "auto")
    assert status == 0 and "1 torch thread(s)" in out


def test_cli_bad_count_exits_2(run_cli):
    status, _, err = run_cli("train", "--torch-threads", "many")
    assert status == 2 and "invalid torch_threads value: 'many'" in err


def test_estimator_passes_the_count_on():
    X, y = synthetic_xy(300, 3, 0, "float64")
    est = LogregClassifier(impl="module", epochs=2, torch_threads=2).fit(X, y)
    assert est.get_params()["torch_threads"] == 2 and torch.get_num_threads() == 2
    LogregClassifier(impl="autograd", epochs=2).fit(X, y)  # default: chosen from 300 x 3
    assert torch.get_num_threads() == 1


def test_throughput_cells_choose_per_size_or_take_the_override():
    X, y = synthetic_xy(400, 5, 0, "float32")
    assert tp.run_cell("autograd", "cpu", X, y, "float32", None, 1, 2)["torch_threads"] == 1
    assert tp.run_cell("module", "cpu", X, y, "float32", None, 1, 2, torch_threads=2)["torch_threads"] == 2
    assert tp.run_cell("numpy", "cpu", X, y, "float32", None, 1, 2)["torch_threads"] == ""
    assert np.isnan(tp.run_cell("module", "cpu", X, y, "float32", None, 1, 2)["compile_seconds"])
