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


_INPUTS: dict[str, list] = {}  # by the split's digest: built once per process
CONTEXTS = {"training": "train", "validation": "validation", "testing": "test"}


def _tensor(dtype, shape) -> list[dict]:
    return [{"type": "tensor", "tensor-spec": {"dtype": str(dtype), "shape": list(shape)}}]


def _source(split) -> tuple[str, dict]:
    """The registry's entry, or the user's file and its sha256."""
    meta = split.metadata
    if "file" in meta:
        return "local", {"uri": meta["file"], "sha256": meta.get("sha256", "")}
    return "logreg", {"dataset": split.name, "description": split.source}


def dataset_inputs(split) -> list:
    """The split's parts as MLflow dataset inputs (contexts training, validation, testing): name,
    source, our digest of every row of the part (MLflow's default reads only the first 10,000),
    shapes and dtypes. A split too small to split (every part the same rows) is logged once."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    if split.digest in _INPUTS:
        return _INPUTS[split.digest]
    source_type, source = _source(split)
    arrays = {"train": (split.X_train, split.y_train), "validation": (split.X_val, split.y_val)}
    arrays["test"] = (split.X_test, split.y_test)
    inputs, seen = [], set()
    for context, part in CONTEXTS.items():
        (X, y), digest = arrays[part], split.part_digests[part]
        if digest in seen:
            continue
        seen.add(digest)
        spec = {
            "features": json.dumps(_tensor(X.dtype, [-1, X.shape[1]])),
            "targets": json.dumps(_tensor(y.dtype, [-1])),
        }
        profile = {"features_shape": list(X.shape), "targets_shape": list(y.shape)}
        if split.sparse:
            profile.update(features_format="csr", features_nnz=int(X.nnz))
        profile = json.dumps(profile)
        schema = json.dumps({"mlflow_tensorspec": spec})
        dataset = Dataset(split.name, digest, source_type, json.dumps(source), schema, profile)
        inputs.append(DatasetInput(dataset, [InputTag("mlflow.data.context", context)]))
    _INPUTS[split.digest] = inputs
    return inputs
