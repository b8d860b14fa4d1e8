"""Tags that say where a run ran (device, host, versions, commit) and on which data."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (with '+dirty' when it has changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


@functools.lru_cache(maxsize=4)
def environment_tags(device: str) -> dict[str, str]:
    """Tags that say where a run ran: device kind and name, host, versions, commit."""
    tags = {
        "logreg.device_kind": device,
        "logreg.device_name": cpu_name(),
        "logreg.host": socket.gethostname(),
        "logreg.git_commit": git_commit(),
        "logreg.python_version": platform.python_version(),
    }
    # Versions from the installed distributions: no need to import optuna (tune's job) here.
    for package in ("torch", "numpy", "mlflow", "optuna"):
        tags[f"logreg.{package}_version"] = _version(package)
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            tags["logreg.device_name"] = torch.cuda.get_device_name()
            tags["logreg.cuda_version"] = str(torch.version.cuda)
    return tags


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def dataset_tags(split) -> dict[str, str]:
    """Tags naming the dataset, its shape and content digest."""
    return {
        "logreg.dataset": split.name,
        "logreg.dataset_shape": f"{split.n_samples}x{split.n_features}",
        "logreg.dataset_n_train": str(len(split.y_train)),
        "logreg.dataset_n_classes": str(split.n_classes),
        "logreg.dataset_digest": split.digest,
    }
