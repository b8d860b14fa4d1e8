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
