"""Helpers shared by test modules that start real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(
    tmp_path: Path, port: int, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.Popen:
    """A real `mlflow server` (SQLite backend, served artifacts in tmp_path), once /health answers.

    It runs in its own process group, so a test can kill it with its workers (os.killpg).
    """
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path}/server.db",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**(os.environ if env is None else env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited ({server.returncode}) before answering /health")
        time.sleep(0.1)
    server.kill()
    pytest.fail("timed out waiting for mlflow server")


def log_throughput_rows(uri, rows):
    """Write throughput runs with the schema `logreg throughput` logs (tp.row_record)."""
    from logreg.bench import throughput as tp
    from logreg.tracking import Tracker

    with Tracker(uri) as tracker:
        exp = tracker.experiment_id(tp.EXPERIMENT)
        for row in rows:
            tracker.write(tp.row_record(exp, row))


def log_sweep_runs(uri, experiment, studies):
    """A sweep's runs written by hand: {parent name: (parent tags, [(params, metrics, tags), ...])}."""
    from logreg.tracking import RunRecord, Tracker

    with Tracker(uri) as tracker:
        exp = tracker.experiment_id(experiment)
        for name, (tags, children) in studies.items():
            parent = tracker.start_run(exp, name, tags, {})
            for i, (params, metrics, child_tags) in enumerate(children):
                tracker.write(
                    RunRecord(
                        exp, f"trial-{i}", "FINISHED", child_tags, params, metrics, parent_run_id=parent
                    )
                )
            tracker.end_run(parent)


def throughput_row(impl, device, n, sps, compile=False):
    """One row of `logreg throughput`'s table with made-up, known numbers (for the maths of compare)."""
    return {
        "impl": impl,
        "compile": compile,
        "compile_seconds": 1.0 if compile else float("nan"),
        "device": device,
        "n": n,
        "d": 10,
        "dtype": "float32",
        "batch_size": "full",
        "optimizer": "sgd",
        "warmup": 1,
        "repeats": 3,
        "epoch_seconds_median": n / sps,
        "epoch_seconds_min": n / sps,
        "samples_per_second": sps,
        "bytes_per_epoch": n * 40,
        "effective_bandwidth_gbs": 1.0,
        "device_bandwidth_gbs": 10.0,
        "bandwidth_fraction": 0.1,
        "roofline_ratio": 10.0,
        "host_load_per_core": 0.5,
        "torch_threads": 2,
    }


def headless_chromium(
    *args: str, url: str, width: int = 1366, height: int = 900, budget_ms: int = 20000
) -> str:
    """Debian's chromium, headless, on `url` at width x height; its stdout (the DOM with
    --dump-dom, after the page's scripts ran for up to `budget_ms` of virtual time)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        out = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--virtual-time-budget={budget_ms}", *args, url],
            capture_output=True, text=True, timeout=180, check=True,
        )  # fmt: skip
    return out.stdout


def parser_flags(command: str) -> set[str]:
    """The --flags `logreg COMMAND` takes (its parser's, --help and suppressed ones left out)."""
    from logreg.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001 - argparse
    parser = sub.choices[command]
    flags = set()
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of options
        if action.help == "==SUPPRESS==":
            continue
        flags |= {f for f in action.option_strings if f.startswith("--") and f != "--help"}
    return flags


def commands() -> list[str]:
    """Every `logreg` subcommand."""
    from logreg.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001 - argparse
    return sorted(sub.choices)
