"""The one validated configuration object of a training run."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from logreg.errors import LogregError

IMPL_NAMES = ("numpy", "autograd", "module")
OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
DEVICE_NAMES = ("cpu", "cuda", "auto")
DTYPE_NAMES = ("float32", "float64")
FLOAT32_MAX = 3.4028234663852886e38

# Defaults that train every built-in dataset well in the default 100 full-batch
# epochs on standardised features (checked by tests/test_accuracy.py).
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.5, "momentum": 0.0},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 0.05, "momentum": 0.0},
}


def _check_number(
    name: str,
    value: Any,
    *,
    kind: type,
    low=None,
    high=None,
    low_open=False,
    high_open=False,
    allow_none=False,
) -> None:
    """Raise LogregError unless `value` is a `kind` in the given range."""
    if value is None and allow_none:
        return
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok_type = isinstance(value, int) and not isinstance(value, bool)
    if ok_type and kind is float:
        ok_type = math.isfinite(value)
    in_range = ok_type and (
        (low is None or (value > low if low_open else value >= low))
        and (high is None or (value < high if high_open else value <= high))
    )
    if in_range:
        return
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    rng = " and ".join(parts)
    what = "an int" if kind is int else "a float"
    raise LogregError(
        f"The {name!r} parameter must be {what}{' ' + rng if rng else ''}. Got {value!r} instead."
    )


def _check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise LogregError(
            f"The {name!r} parameter must be one of {', '.join(map(str, choices))}. Got {value!r} instead."
        )


def require_cuda(fix: str) -> None:
    """Raise LogregError, ending with `fix`, unless torch sees a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise LogregError(
            f"Device 'cuda' was requested but torch.cuda.is_available() is False on this machine. {fix}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run; validated on construction.

    `lr` and `momentum` left as None take the optimizer's default
    (OPTIMIZER_DEFAULTS), so the stored config always holds the values used.
    """

    dataset: str = "blobs"
    """Registry name (`logreg datasets`), e.g. 'iris' or 'synthetic:n=100000,d=100'.
    Ignored when `data` is given."""
    data: str | None = None
    """Path of the user's own CSV or Parquet file."""
    target: str | None = None
    """Label column of `data`."""
    impl: str = "numpy"
    """Implementation: numpy, autograd or module."""
    optimizer: str = "adam"
    """Update rule: sgd, momentum or adam (torch.optim semantics)."""
    lr: float | None = None
    """Learning rate; None takes the optimizer's default."""
    momentum: float | None = None
    """Heavy-ball momentum for 'momentum' (0.9 by default); must be 0 for the others."""
    nesterov: bool = False
    """Nesterov momentum (optimizer 'momentum' only)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's decay rates of the first and second moment estimates."""
    eps: float = 1e-8
    """Adam's term added to the denominator, outside the square root."""
    weight_decay: float = 0.0
    """Coupled L2 penalty on the weights (not the bias): adds weight_decay * w to the gradient."""
    epochs: int = 100
    """Passes over the training part."""
    batch_size: int | None = None
    """Mini-batch size; None trains full batch."""
    device: str = "cpu"
    """cpu, cuda or auto (cuda when available). numpy runs on the CPU only."""
    dtype: str = "float32"
    """float32 or float64, for data and parameters."""
    seed: int = 0
    """Seeds data generation, splits, initial weights and batch order."""
    test_size: float = 0.25
    """Fraction held out as the test part (stratified)."""
    val_size: float = 0.2
    """Fraction of the training part carved out for validation (tuning)."""
    standardize: bool = True
    """Standardise features with statistics of the training part only."""
    eval_every: int = 1
    """Evaluate (excluded from timings) every this many epochs, and after the last."""
    target_accuracy: float | None = None
    """Record the training time until test accuracy first reaches this value."""

    def __post_init__(self) -> None:
        from logreg.data import check_dataset_name

        if isinstance(self.data, os.PathLike):
            object.__setattr__(self, "data", os.fspath(self.data))
        for name in ("data", "target"):
            if not isinstance(getattr(self, name), str | None):
                raise LogregError(
                    f"The {name!r} parameter must be a string or None. Got {getattr(self, name)!r} instead."
                )
        if self.data is None:
            if not isinstance(self.dataset, str):
                raise LogregError(f"The 'dataset' parameter must be a string. Got {self.dataset!r} instead.")
            check_dataset_name(self.dataset)
        elif self.target is None:
            raise LogregError("A data file needs its label column: pass --target COLUMN.")
        _check_choice("impl", self.impl, IMPL_NAMES)
        _check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _check_choice("device", self.device, DEVICE_NAMES)
        _check_choice("dtype", self.dtype, DTYPE_NAMES)
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        if self.lr is None:
            object.__setattr__(self, "lr", defaults["lr"])
        if self.momentum is None:
            object.__setattr__(self, "momentum", defaults["momentum"])
        if isinstance(self.lr, int) and not isinstance(self.lr, bool):
            object.__setattr__(self, "lr", float(self.lr))
        _check_number("lr", self.lr, kind=float, low=0, low_open=True)
        if self.optimizer == "momentum":
            _check_number("momentum", self.momentum, kind=float, low=0, high=1, high_open=True)
        elif self.momentum != 0:
            raise LogregError(
                f"The 'momentum' parameter only applies to optimizer 'momentum'. Got "
                f"momentum={self.momentum!r} with optimizer {self.optimizer!r}; use --optimizer momentum."
            )
        if not isinstance(self.nesterov, bool):
            raise LogregError(f"The 'nesterov' parameter must be a bool. Got {self.nesterov!r} instead.")
        if self.nesterov and not (self.optimizer == "momentum" and self.momentum > 0):
            raise LogregError("Nesterov momentum needs --optimizer momentum with momentum > 0.")
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2):
            raise LogregError(
                f"The 'betas' parameter must be two floats in [0, 1). Got {self.betas!r} instead."
            )
        object.__setattr__(self, "betas", tuple(float(b) if isinstance(b, int) else b for b in betas))
        for i, b in enumerate(self.betas):
            _check_number(f"betas[{i}]", b, kind=float, low=0, high=1, high_open=True)
        # torch.optim multiplies by its first step size (lr, or lr / (1 - beta1) for Adam) in the
        # parameters' dtype: beyond the largest float32 it raises RuntimeError instead of diverging.
        lr_max = FLOAT32_MAX * (1 - self.betas[0]) if self.optimizer == "adam" else FLOAT32_MAX
        if self.dtype == "float32" and self.lr > lr_max:
            raise LogregError(
                f"The 'lr' parameter must be <= {lr_max:.4g} with dtype 'float32' and optimizer "
                f"{self.optimizer!r}. Got {self.lr!r} instead; use a smaller lr or --dtype float64."
            )
        _check_number("eps", self.eps, kind=float, low=0, low_open=True)
        _check_number("weight_decay", self.weight_decay, kind=float, low=0)
        _check_number("epochs", self.epochs, kind=int, low=1)
        _check_number("batch_size", self.batch_size, kind=int, low=1, allow_none=True)
        _check_number("seed", self.seed, kind=int, low=0, high=2**32 - 1)
        _check_number("test_size", self.test_size, kind=float, low=0, high=1, low_open=True, high_open=True)
        _check_number("val_size", self.val_size, kind=float, low=0, high=1, low_open=True, high_open=True)
        if not isinstance(self.standardize, bool):
            raise LogregError(
                f"The 'standardize' parameter must be a bool. Got {self.standardize!r} instead."
            )
        _check_number("eval_every", self.eval_every, kind=int, low=1)
        _check_number(
            "target_accuracy", self.target_accuracy, kind=float, low=0, high=1, low_open=True, allow_none=True
        )
        if self.impl == "numpy" and self.device == "cuda":
            raise LogregError(
                "The 'numpy' implementation runs on the CPU only. Got device='cuda'; "
                "use --device cpu, or --impl autograd|module for CUDA."
            )
        if self.device == "cuda":
            require_cuda("Use --device cpu (or auto).")

    @property
    def resolved_device(self) -> str:
        """'cpu' or 'cuda': what 'auto' means on this machine."""
        if self.device != "auto":
            return self.device
        if self.impl == "numpy":
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def data_name(self) -> str:
        """The dataset's display name: the registry name or the file's name."""
        if self.data is None:
            return self.dataset
        from pathlib import Path

        return Path(self.data).name

    def to_params(self) -> dict[str, Any]:
        """The config as a flat dict of loggable values (one source of truth)."""
        params = dataclasses.asdict(self)
        params["betas"] = list(self.betas)
        return params

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed, validated again.

        Changing the optimizer without giving lr/momentum takes the new
        optimizer's defaults rather than keeping the old optimizer's values.
        """
        if "optimizer" in changes and changes["optimizer"] != self.optimizer:
            changes.setdefault("lr", None)
            changes.setdefault("momentum", None)
        return dataclasses.replace(self, **changes)
