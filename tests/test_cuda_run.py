"""The prepared CUDA run (scripts/cuda_run.py, `nox -s cuda`), tested where it will not measure:
on the CPU, with the CUDA steps skipped, every other step must run and write what it promises."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "cuda_run.py"


def _script():
    spec = importlib.util.spec_from_file_location("cuda_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cuda_test_step_runs_every_file_that_holds_cuda_tests():
    holding = {
        p.name for p in (ROOT / "tests").glob("test_*.py") if re.search(r"mark\.cuda\b", p.read_text())
    }
    assert holding == set(_script().CUDA_TEST_FILES)


@pytest.mark.slow
def test_the_prepared_run_runs_on_the_cpu_with_the_cuda_steps_skipped(tmp_path):
    out, archive = tmp_path / "cuda", tmp_path / "cuda.tar.gz"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--archive", str(archive)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "every step ran" in r.stdout
    if not torch.cuda.is_available():
        for step in ("cuda tests", "goals"):
            assert f"== {step}: skipped (no CUDA)" in r.stdout
    for name in ("environment.md", "throughput_cpu.csv", "sparse_cpu.md", "compare/throughput.md",
                 "compare/sweeps.md", "mlflow.db"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "sparse_cpu.md").read_text().count("| text:n=2000,d=20000,nnz=20 | 40,000 |") == 3
    assert "cuda_smoke" in (out / "compare" / "sweeps.md").read_text()
    with tarfile.open(archive) as tar:  # what the device tool brings back: the folder, whole
        names = set(tar.getnames())
    assert {"cuda/environment.md", "cuda/compare/throughput.md", "cuda/sparse_cpu.md"} <= names
