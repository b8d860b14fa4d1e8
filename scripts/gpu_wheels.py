"""Wheels the GPU machine lacks, into .whl/ (git-ignored), for the device tool to carry.

The GPU machine (the device tool's nvidia-h200: Python 3.12, x86-64, no package registry) has
torch, numpy, pandas, scikit-learn, scipy, pytest and pytest-benchmark, but not mlflow or optuna.
This downloads the versions this checkout's environment runs (mlflow, optuna and everything they
need) for that Python, then keeps only the packages the machine's image does not hold (the list
below, from the device tool's KINDS.md): about 35 MB. There:

    python3 -m pip install --no-index --no-deps .whl/*.whl

    python scripts/gpu_wheels.py [--python-version 3.12]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# The image's packages (KINDS.md, "Python packages already there", read 2026-11-17).
ON_THE_GPU_MACHINE = frozenset(
    """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch
grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig
interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()  # noqa: SIM905 - a list to compare with KINDS.md
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--dest", type=Path, default=ROOT / ".whl")
    args = p.parse_args(argv)
    wanted = [f"{name}=={importlib.metadata.version(name)}" for name in ("mlflow", "optuna")]
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [arg for plat in PLATFORMS for arg in ("--platform", plat)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
             args.python_version, *platforms, "-d", tmp, *wanted],
            check=True,
        )  # fmt: skip
        there = {_norm(n) for n in ON_THE_GPU_MACHINE}
        keep = [w for w in sorted(Path(tmp).glob("*.whl")) if _norm(w.name.split("-")[0]) not in there]
        shutil.rmtree(args.dest, ignore_errors=True)
        args.dest.mkdir(parents=True)
        for wheel in keep:
            shutil.copy2(wheel, args.dest / wheel.name)
    size = sum(w.stat().st_size for w in args.dest.glob("*.whl")) / 2**20
    print(f"{len(keep)} wheels ({size:.0f} MB) for {', '.join(wanted)} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
