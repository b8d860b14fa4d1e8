"""The one validated configuration object of a training run (a leaf: errors and validation only)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from logreg.errors import LogregError
from logreg.validation import NONE, Interval, OfType, Options, check_param, check_params

IMPL_NAMES = ("numpy", "autograd", "module")
OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
DEVICE_NAMES = ("cpu", "cuda", "auto")
DTYPE_NAMES = ("float32", "float64")
MODEL_NAMES = ("logistic", "mlp", "linear")
ACTIVATION_NAMES = ("relu", "leaky_relu", "tanh", "none")
SCHEDULE_NAMES = ("constant", "step", "exponential", "cosine")
FORMAT_NAMES = ("csv", "parquet", "svmlight")
FLOAT32_MAX = 3.4028234663852886e38

# Defaults that train every built-in dataset well in the default 100 full-batch
# epochs on standardised features (checked by tests/test_accuracy.py).
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.5, "momentum": 0.0},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 0.05, "momentum": 0.0},
}
# The logistic model's default L2 on sparse rows: scikit-learn's SGDClassifier alpha (the same
# penalty as weight_decay). Wide sparse data is separable, and with no penalty the rare columns are
# memorised (docs/datasets.md has the measurement). Dense data and the other models default to 0.
SPARSE_WEIGHT_DECAY = 1e-4
# Names whose rows are sparse: LIBSVM's files (logreg.data.libsvm, checked equal by the tests) and
# the text generator.
SPARSE_DATASETS = ("a9a", "w8a", "real-sim", "rcv1.binary", "news20.binary", "covtype.binary", "text")


def is_sparse_name(dataset) -> bool:
    """Whether a dataset name gives sparse rows: an svmlight file's path, a LIBSVM name, text:..."""
    from logreg.paths import is_svmlight

    return isinstance(dataset, str) and (is_svmlight(dataset) or dataset.partition(":")[0] in SPARSE_DATASETS)


STRING = OfType((str,), "a string")
BOOL = OfType((bool,), "a bool")
FRACTION = Interval(float, 0, 1, open_low=True, open_high=True)

# What each field accepts, checked by validation.check_params (momentum, betas and lr have
# rules that depend on other fields: see TrainConfig._check_optimizer).
CONSTRAINTS = {
    "dataset": STRING,
    "data": (STRING, NONE),
    "target": (STRING, NONE),
    "format": (Options(FORMAT_NAMES), NONE),
    "test_data": (STRING, NONE),
    "n_features": (Interval(int, 1), NONE),
    "impl": Options(IMPL_NAMES),
    "optimizer": Options(OPTIMIZER_NAMES),
    "device": Options(DEVICE_NAMES),
    "dtype": Options(DTYPE_NAMES),
    "lr": Interval(float, 0, open_low=True),
    "nesterov": BOOL,
    "eps": Interval(float, 0, open_low=True),
    "weight_decay": Interval(float, 0),
    "epochs": Interval(int, 1),
    "batch_size": (Interval(int, 1), NONE),
    "seed": Interval(int, 0, 2**32 - 1),
    "test_size": FRACTION,
    "val_size": FRACTION,
    "standardize": BOOL,
    "eval_every": Interval(int, 1),
    "target_accuracy": (Interval(float, 0, 1, open_low=True), NONE),
    "model": Options(MODEL_NAMES),
    "hidden": Interval(int, 1),
    "activation": Options(ACTIVATION_NAMES),
    "schedule": Options(SCHEDULE_NAMES),
    "step_size": Interval(int, 1),
    "gamma": Interval(float, 0, open_low=True),
    "warmup_epochs": Interval(int, 0),
    "torch_threads": Interval(int, 0),
    "compile": BOOL,
}


def _is_float_field(constraint) -> bool:
    options = constraint if isinstance(constraint, tuple) else (constraint,)
    return any(isinstance(c, Interval) and c.kind is float for c in options)


NUMPY_ON_CUDA = (
    "The 'numpy' implementation runs on the CPU only. Got device='cuda'; "
    "use --device cpu, or --impl autograd|module for CUDA."
)

NUMPY_COMPILE = (
    "The 'compile' parameter applies to the torch implementations only. Got compile=True with "
    "impl='numpy'; use --impl autograd|module, or drop --compile."
)
MLP_COMPILE = (
    "The 'compile' parameter applies to models logistic and linear only. Got compile=True with "
    "model='mlp'; use --model logistic|linear, or drop --compile."
)


def can_compile(impl: str, model: str) -> bool:
    """Whether `compile` applies: the torch implementations of models logistic and linear."""
    return impl != "numpy" and model != "mlp"


def runs_on(impl: str, device: str) -> bool:
    """Whether an implementation runs on a device: numpy runs on the CPU only."""
    return not (impl == "numpy" and device == "cuda")


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
    """Registry name (`logreg datasets`), e.g. 'iris' or 'synthetic:n=100000,d=100', or an
    svmlight file's path. Ignored when `data` is given."""
    data: str | None = None
    """Path of the user's own file: CSV, Parquet or svmlight / LIBSVM (.svm, .svmlight, .libsvm,
    optionally .bz2, .gz or .xz)."""
    target: str | None = None
    """Label column of `data` (CSV and Parquet; an svmlight file holds its labels)."""
    format: str | None = None
    """Format of `data`: csv, parquet or svmlight; by default from the file's extension."""
    test_data: str | None = None
    """A file of the same format and columns as `data` whose rows are the test part (as
    rcv1's test file; test_size is then unused)."""
    n_features: int | None = None
    """Columns of an svmlight `data` (and `test_data`) file; by default the largest index in them."""
    impl: str = "numpy"
    """Implementation: numpy, autograd or module."""
    optimizer: str = "adam"
    """Update rule: sgd, momentum or adam (torch.optim semantics)."""
    lr: float | None = None
    """Learning rate; by default the optimizer's (sgd 0.5, momentum 0.1, adam 0.05)."""
    momentum: float | None = None
    """Heavy-ball momentum for 'momentum' (0.9 by default); must be 0 for the others."""
    nesterov: bool = False
    """Nesterov momentum (optimizer 'momentum' only)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's decay rates of the first and second moment estimates."""
    eps: float = 1e-8
    """Adam's term added to the denominator, outside the square root."""
    weight_decay: float | None = None
    """Coupled L2 penalty on the weights (not the bias): adds weight_decay * w to the gradient. By
    default 0, and 1e-4 for the logistic model on sparse rows (svmlight files, LIBSVM names, text)."""
    epochs: int = 100
    """Passes over the training part."""
    batch_size: int | None = None
    """Mini-batch size; full batch when not given."""
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
    model: str = "logistic"
    """logistic (sigmoid / softmax), mlp (one hidden layer) or linear (least squares, loss = MSE)."""
    hidden: int = 16
    """Hidden units of the mlp model."""
    activation: str = "relu"
    """Hidden activation of the mlp model: relu, leaky_relu (slope 0.01), tanh or none."""
    schedule: str = "constant"
    """Learning-rate schedule per epoch: constant, step, exponential or cosine (T_max = epochs - warmup)."""
    step_size: int = 30
    """Epochs between two decays of the 'step' schedule."""
    gamma: float = 0.1
    """Decay factor of the 'step' (per step_size epochs) and 'exponential' (per epoch) schedules."""
    warmup_epochs: int = 0
    """Epochs of linear warm-up from lr / (warmup_epochs + 1) to lr before the schedule starts."""
    torch_threads: int = 0
    """torch CPU threads; auto (or 0) chooses from the size of the training part: one thread
    below timing.THREADS_CUTOFF_ELEMENTS values of X, every free core above."""
    compile: bool = False
    """Run the training step of autograd / module under torch.compile (inductor); not numpy."""

    def __post_init__(self) -> None:
        if isinstance(self.data, os.PathLike):
            object.__setattr__(self, "data", os.fspath(self.data))
        if self.torch_threads == "auto":  # the documented synonym of 0: params stay ints
            object.__setattr__(self, "torch_threads", 0)
        if self.data is not None and self.target is None and not self.svmlight:
            raise LogregError(
                "A data file needs its label column: pass --target COLUMN (CSV, Parquet), or "
                "--format svmlight for an svmlight / LIBSVM file, which holds its labels."
            )
        if isinstance(self.test_data, os.PathLike):
            object.__setattr__(self, "test_data", os.fspath(self.test_data))
        self._check_files()
        check_params({k: CONSTRAINTS[k] for k in ("impl", "optimizer", "device", "dtype")}, vars(self))
        self._fill_optimizer_defaults()
        check_params(CONSTRAINTS, vars(self))
        self._check_optimizer()
        self._check_schedule()
        self._check_device()

    def _check_files(self) -> None:
        if self.test_data is not None and self.data is None:
            raise LogregError(
                "A test file (--test-data) goes with a training file: pass --data FILE too "
                "(a registry dataset makes its own test part)."
            )
        if self.n_features is not None and not self.svmlight:
            raise LogregError(
                "--n-features applies to svmlight / LIBSVM files (their columns are the indices "
                "used); a CSV or Parquet file and a registry dataset have their own columns. Drop it."
            )

    def _fill_optimizer_defaults(self) -> None:
        """lr / momentum left as None take the optimizer's defaults; an int lr becomes a float."""
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        if self.lr is None:
            object.__setattr__(self, "lr", defaults["lr"])
        if self.momentum is None:
            object.__setattr__(self, "momentum", defaults["momentum"])
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", self._weight_decay_default())
        # An int where a float is asked for (eps=1, weight_decay=0) becomes that float: the params
        # log what trained, and torch refuses a huge int in a float tensor's arithmetic.
        for name, constraint in CONSTRAINTS.items():
            value = getattr(self, name)
            if _is_float_field(constraint) and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2):
            raise LogregError(
                f"The 'betas' parameter must be two floats in [0, 1). Got {self.betas!r} instead."
            )
        object.__setattr__(self, "betas", tuple(float(b) if isinstance(b, int) else b for b in betas))

    def _weight_decay_default(self) -> float:
        return SPARSE_WEIGHT_DECAY if self.model == "logistic" and self.sparse_rows else 0.0

    def _check_optimizer(self) -> None:
        """The rules between fields: momentum and Nesterov only for 'momentum'; lr within float32."""
        if self.optimizer == "momentum":
            check_param("momentum", self.momentum, Interval(float, 0, 1, open_high=True))
        elif self.momentum != 0:
            raise LogregError(
                f"The 'momentum' parameter only applies to optimizer 'momentum'. Got "
                f"momentum={self.momentum!r} with optimizer {self.optimizer!r}; use --optimizer momentum."
            )
        if self.nesterov and not (self.optimizer == "momentum" and self.momentum > 0):
            raise LogregError("Nesterov momentum needs --optimizer momentum with momentum > 0.")
        for i, b in enumerate(self.betas):
            check_param(f"betas[{i}]", b, Interval(float, 0, 1, open_high=True))
        # torch.optim multiplies by its first step size (lr, or lr / (1 - beta1) for Adam) in the
        # parameters' dtype: beyond the largest float32 it raises RuntimeError instead of diverging.
        lr_max = FLOAT32_MAX * (1 - self.betas[0]) if self.optimizer == "adam" else FLOAT32_MAX
        if self.dtype == "float32" and self.lr > lr_max:
            raise LogregError(
                f"The 'lr' parameter must be <= {lr_max:.4g} with dtype 'float32' and optimizer "
                f"{self.optimizer!r}. Got {self.lr!r} instead; use a smaller lr or --dtype float64."
            )

    def _check_schedule(self) -> None:
        if self.warmup_epochs >= self.epochs:
            raise LogregError(
                f"The 'warmup_epochs' parameter must be < epochs ({self.epochs}). Got "
                f"{self.warmup_epochs!r} instead; use fewer warm-up epochs or more epochs."
            )

    def _check_device(self) -> None:
        if self.compile and self.impl == "numpy":
            raise LogregError(NUMPY_COMPILE)
        if self.compile and self.model == "mlp":
            raise LogregError(MLP_COMPILE)
        if not runs_on(self.impl, self.device):
            raise LogregError(NUMPY_ON_CUDA)
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
    def svmlight(self) -> bool:
        """Whether `data` is an svmlight / LIBSVM file (by `format`, else by its extension)."""
        from logreg.paths import is_svmlight

        return isinstance(self.data, str) and is_svmlight(self.data, self.format)

    @property
    def sparse_rows(self) -> bool:
        """Whether the data is read as sparse rows: an svmlight file, a LIBSVM name, text:..."""
        return self.svmlight if self.data is not None else is_sparse_name(self.dataset)

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
        optimizer's defaults rather than keeping the old optimizer's values; changing the data or
        the model keeps weight_decay only when it is not the old default.
        """
        if "optimizer" in changes and changes["optimizer"] != self.optimizer:
            changes.setdefault("lr", None)
            changes.setdefault("momentum", None)
        if (
            changes.keys() & {"dataset", "data", "format", "model"}
            and self.weight_decay == self._weight_decay_default()
        ):
            changes.setdefault("weight_decay", None)  # the default of the new data and model
        return dataclasses.replace(self, **changes)
