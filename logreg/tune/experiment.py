"""Experiment files (experiments/*.toml): the schema, validated on load.

name = "default"                 # Optuna study prefix; the MLflow experiment is "sweep/<name>"
datasets = ["iris", "digits"]    # registry names (`logreg datasets`)
models = ["logistic"]            # logistic, mlp, linear (each dataset runs with the models
                                 # that suit it: linear on regression datasets, the others on classes)
impls = ["numpy", "autograd", "module"]
optimizers = ["sgd", "momentum", "adam"]
devices = ["cpu"]                # cpu, cuda, auto
compile = [false]                # [false, true]: eager and torch.compile'd cells side by side
                                 # (autograd and module; numpy and mlp cells stay eager)
n_trials = 10                    # finished trials per cell (dataset x model x impl x optimizer x
                                 # device x compile)
epochs = 60                      # per trial, unless [search.<optimizer>] tunes epochs
seed = 0                         # data split, initial weights, batch order, and the sampler
objective = "val_loss"           # val_loss (minimised), val_accuracy or val_r2 (linear) (maximised)
eval_every = 5                   # epochs between evaluations (pruning checks, logged steps)
repeats = 1                      # at the end, the best config of each cell with this many seeds
dtype = "float32"

[sampler]                        # name: tpe, random, qmc, gp or grid (see below)
name = "tpe"
n_startup_trials = 5             # tpe and gp only: random trials before the model takes over
[pruner]                         # name: median, hyperband or none
name = "median"
n_startup_trials = 3             # median only
n_warmup_steps = 10              # median only: epochs before pruning may start

[search.adam]                    # one table per optimizer; each key optional
lr = [1e-4, 0.5]                 # [low, high], sampled on a log scale
beta1 = [0.8, 0.95]              # adam only
beta2 = [0.99, 0.9999]           # adam only
momentum = [0.5, 0.99]           # momentum only
nesterov = [false, true]         # momentum only: choices
weight_decay = [1e-6, 1e-2]      # log scale; absent means 0
batch_size = ["full", 32, 128]   # choices; "full" is full batch
epochs = [20, 200]               # tune epochs too (integers)
schedule = ["constant", "cosine", "step", "exponential"]  # choices of learning-rate schedule
gamma = [0.5, 0.99]              # step / exponential decay factor (when such a schedule is drawn)
step_size = [5, 30]              # step schedule: epochs between decays (integers)
warmup_epochs = [0, 5]           # linear warm-up epochs (integers; high < epochs)
hidden = [8, 32]                 # mlp cells only: choices of hidden units
activation = ["relu", "tanh"]    # mlp cells only: choices of activation

With `[sampler] name = "grid"`, every list in [search.<optimizer>] holds the explicit points to
try, e.g. `lr = [1e-3, 1e-2, 1e-1, 1]`, `batch_size = ["full", 128]`; an optimizer without a
table gets `lr = [1e-3, 1e-2, 1e-1, 1]`. Each cell runs its whole grid (every combination) once
and stops: a grid larger than n_trials is an error (it would not fit), a smaller one ends the
cell early. The other samplers read the same keys as [low, high] ranges (or choices).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from logreg.config import (
    ACTIVATION_NAMES,
    DEVICE_NAMES,
    DTYPE_NAMES,
    IMPL_NAMES,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    SCHEDULE_NAMES,
    can_compile,
    runs_on,
)
from logreg.data import check_dataset_name, suits
from logreg.errors import LogregError, clip
from logreg.validation import Interval, ListOf, Options, check_param

MAX_NAME = 100
OBJECTIVES = {"val_loss": "minimize", "val_accuracy": "maximize", "val_r2": "maximize"}
SAMPLERS = ("tpe", "random", "qmc", "gp", "grid")
SAMPLER_KEYS = {
    "tpe": ("n_startup_trials",),
    "gp": ("n_startup_trials",),
    "random": (),
    "qmc": (),
    "grid": (),
}
PRUNERS = ("median", "hyperband", "none")
TOP_KEYS = (
    "name",
    "datasets",
    "models",
    "impls",
    "optimizers",
    "devices",
    "compile",
    "n_trials",
    "epochs",
    "seed",
    "objective",
    "eval_every",
    "dtype",
    "repeats",
    "sampler",
    "pruner",
    "search",
)
# Keys every optimizer table takes besides its own: the schedule and the mlp's shape.
COMMON_SEARCH_KEYS = ("schedule", "gamma", "step_size", "warmup_epochs", "hidden", "activation")
SEARCH_KEYS = {
    "sgd": ("lr", "weight_decay", "batch_size", "epochs", *COMMON_SEARCH_KEYS),
    "momentum": ("lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs", *COMMON_SEARCH_KEYS),
    "adam": ("lr", "beta1", "beta2", "weight_decay", "batch_size", "epochs", *COMMON_SEARCH_KEYS),
}
DEFAULT_SEARCH: dict[str, dict[str, Any]] = {
    "sgd": {"lr": [1e-3, 3.0]},
    "momentum": {"lr": [1e-4, 1.0], "momentum": [0.5, 0.99]},
    "adam": {"lr": [1e-4, 0.5]},
}
DEFAULT_GRID_LR = [1e-3, 1e-2, 1e-1, 1.0]
# Keys searched over a numeric range: [low, high], or a grid's explicit points within the bounds.
RANGES: dict[str, dict[str, Any]] = {
    "lr": {"low": 0, "high": 1e9, "log": True},
    "weight_decay": {"low": 0, "high": 10, "log": True},
    "momentum": {"low": 0, "high": 0.99999},
    "beta1": {"low": 0, "high": 0.99999},
    "beta2": {"low": 0, "high": 0.99999},
    "epochs": {"low": 1, "high": 100_000, "integer": True},
    "step_size": {"low": 1, "high": 100_000, "integer": True},
    "warmup_epochs": {"low": 0, "high": 100_000, "integer": True},
    "gamma": {"low": 1e-9, "high": 1e9},
}


class Cell(NamedTuple):
    """One study: a dataset, implementation, optimizer and device, the model trained, and
    whether its training step runs under torch.compile."""

    dataset: str
    impl: str
    optimizer: str
    device: str
    model: str = "logistic"
    compile: bool = False


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file (see the module docstring for the schema)."""

    name: str
    datasets: tuple[str, ...]
    models: tuple[str, ...] = ("logistic",)
    impls: tuple[str, ...] = IMPL_NAMES
    optimizers: tuple[str, ...] = OPTIMIZER_NAMES
    devices: tuple[str, ...] = ("cpu",)
    compile: tuple[bool, ...] = (False,)
    """Eager (False) and/or compiled (True) cells of the torch implementations."""
    n_trials: int = 10
    epochs: int = 60
    seed: int = 0
    objective: str = "val_loss"
    eval_every: int = 5
    dtype: str = "float32"
    repeats: int = 1
    """Seeds the best configuration of each cell runs with at the end (runs tagged 'repeat')."""
    sampler: dict = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    search: dict = field(default_factory=dict)
    path: str = ""

    @property
    def mlflow_experiment(self) -> str:
        """The MLflow experiment of this sweep: 'sweep/<name>', apart from MLflow's own 'Default'."""
        return f"sweep/{self.name}"

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    def cells(self) -> list[Cell]:
        """Cell(dataset, impl, optimizer, device, model, compile) for every cell, in a stable order.

        Each dataset runs with the models that suit it (linear: regression datasets); numpy and
        mlp cells run eager only (one cell, whatever the compile axis says).
        """
        return [
            Cell(d, i, o, dev, m, c)
            for d in self.datasets
            for m in self.models
            for i in self.impls
            for o in self.optimizers
            for dev in self.devices
            for c in (self.compile if can_compile(i, m) else (False,))
            if runs_on(i, dev) and suits(d, m)
        ]

    def study_name(self, cell) -> str:
        """<name>/<dataset>/<impl>/<optimizer>/<device>; the model after the dataset unless
        logistic, '/compiled' at the end for compiled cells.

        Studies of logistic cells keep the names they had before the model axis, so they resume.
        """
        cell = Cell(*cell)
        model = () if cell.model == "logistic" else (cell.model,)
        compiled = ("compiled",) if cell.compile else ()
        return "/".join((self.name, cell.dataset, *model, cell.impl, cell.optimizer, cell.device, *compiled))

    @property
    def grid(self) -> bool:
        """Whether the search tables hold a grid's explicit points (sampler 'grid')."""
        return self.sampler["name"] == "grid"

    def search_space(self, optimizer: str) -> dict[str, Any]:
        if optimizer in self.search:
            return self.search[optimizer]
        return {"lr": list(DEFAULT_GRID_LR)} if self.grid else DEFAULT_SEARCH[optimizer]

    def grid_size(self, optimizer: str) -> int:
        """Points in the optimizer's grid (every combination); 0 unless the sampler is grid."""
        return math.prod(len(v) for v in self.search_space(optimizer).values()) if self.grid else 0

    def trials_per_cell(self, optimizer: str) -> int:
        """Finished trials a cell runs: n_trials, or its whole grid (which fits in n_trials)."""
        return self.grid_size(optimizer) or self.n_trials

    def override(self, **changes: Any) -> Experiment:
        """Command-line values override the file's; validated again."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return validate(_as_dict(replace(self, **changes)), self.path) if changes else self


def _as_dict(exp: Experiment) -> dict[str, Any]:
    return {k: getattr(exp, k) for k in TOP_KEYS}


def _fail(path: str, msg: str) -> None:
    where = f"{Path(path).name}: " if path else ""
    raise LogregError(where + msg)


def _check(path: str, key: str, value: Any, constraint) -> Any:
    """validation.check_param, with the file's name in front of the message."""
    try:
        check_param(key, value, constraint)
    except LogregError as exc:
        _fail(path, str(exc))
    return value


def _names(path, key, value, allowed, check=None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if check is None:
        return tuple(dict.fromkeys(_check(path, key, value, ListOf(Options(tuple(allowed))))))
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        _fail(path, f"'{key}' must be a non-empty list of names. Got {clip(repr(value))}.")
    for v in value:
        try:
            check(v)
        except LogregError as exc:
            _fail(path, f"'{key}': {exc}")
    return tuple(dict.fromkeys(value))


def _int(path, key, value, low) -> int:
    return _check(path, key, value, Interval(int, low))


def _range(path, key, value, *, low, high, log=False, integer=False) -> list:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if ok:
        a, b = value
        ok = (
            low <= a <= b <= high
            and (not log or a > 0)
            and (not integer or all(isinstance(v, int) for v in value))
        )
    if not ok:
        kind = "integers" if integer else "numbers"
        _fail(
            path,
            f"'{key}' must be [low, high] {kind} with {low} {'<' if log else '<='} low <= "
            f"high <= {high}. Got {clip(repr(value))}.",
        )
    return list(value)


def _choices(path: str, key: str, value: Any, kind: str) -> list:
    """A non-empty list of schedule / activation names, or of hidden sizes (integers >= 1)."""
    allowed = {"schedule": SCHEDULE_NAMES, "activation": ACTIVATION_NAMES}.get(kind)
    if allowed is not None:
        ok = isinstance(value, list) and value and all(v in allowed for v in value)
        what = f"names from {', '.join(allowed)}"
    else:
        ok = (
            isinstance(value, list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        )
        what = "integers >= 1"
    if not ok:
        _fail(path, f"{key!r} must be a non-empty list of choices: {what}. Got {clip(repr(value))}.")
    return list(dict.fromkeys(value))


def _points(path, key, value, *, low, high, log=False, integer=False) -> list:
    """A grid's explicit points: a non-empty list of distinct numbers within the key's bounds."""
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and len(set(value)) == len(value)
        and all(low <= v <= high and (not log or v > 0) for v in value)
        and (not integer or all(isinstance(v, int) for v in value))
    )
    if not ok:
        kind = "integers" if integer else "numbers"
        _fail(
            path,
            f"{key!r} must be a grid: a list of distinct {kind} with {low} {'<' if log else '<='} "
            f"point <= {high}, e.g. [1e-3, 1e-2, 1e-1]. Got {clip(repr(value))}.",
        )
    return list(value)


def _check_search(path: str, search: Any, grid: bool = False) -> dict:
    if not isinstance(search, dict):
        _fail(path, f"'search' must be a table of optimizer tables. Got {clip(repr(search))}.")
    out = {}
    for opt, space in search.items():
        if opt not in SEARCH_KEYS:
            _fail(path, f"Unknown optimizer table [search.{opt}]. Allowed: {', '.join(SEARCH_KEYS)}.")
        if not isinstance(space, dict):
            _fail(path, f"[search.{opt}] must be a table. Got {clip(repr(space))}.")
        checked: dict[str, Any] = {}
        for key, value in space.items():
            k = f"search.{opt}.{key}"
            if key not in SEARCH_KEYS[opt]:
                _fail(path, f"Unknown key {k!r}. Allowed keys for {opt}: {', '.join(SEARCH_KEYS[opt])}.")
            if key in RANGES:
                checked[key] = (_points if grid else _range)(path, k, value, **RANGES[key])
            elif key in ("schedule", "activation", "hidden"):
                checked[key] = _choices(path, k, value, key)
            elif key == "nesterov":
                if not (isinstance(value, list) and value and all(isinstance(v, bool) for v in value)):
                    _fail(path, f"{k!r} must be a list of true/false choices. Got {clip(repr(value))}.")
                checked[key] = list(value)
            elif key == "batch_size":
                if not (
                    isinstance(value, list)
                    and value
                    and all(
                        v == "full" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
                        for v in value
                    )
                ):
                    _fail(
                        path,
                        f'{k!r} must be a list of choices: "full" or integers >= 1. Got {clip(repr(value))}.',
                    )
                checked[key] = list(value)
        if "lr" not in checked:
            checked["lr"] = list(DEFAULT_GRID_LR) if grid else DEFAULT_SEARCH[opt]["lr"]
        out[opt] = checked
    return out


def _check_table(path, key, value, allowed_names, allowed_keys) -> dict:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        _fail(path, f"'{key}' must be a table with a 'name'. Got {clip(repr(value))}.")
    name = _check(path, f"{key}.name", value.get("name"), Options(tuple(allowed_names)))
    for k, v in value.items():
        if k == "name":
            continue
        if k not in allowed_keys.get(name, ()):
            _fail(
                path,
                f"Unknown key '{key}.{k}' for {name}. Allowed: "
                f"{', '.join(allowed_keys.get(name, ())) or 'none'}.",
            )
        _int(path, f"{key}.{k}", v, 0)
    return dict(value)


def validate(raw: dict[str, Any], path: str = "") -> Experiment:
    """Check an experiment dict key by key; raise LogregError naming the key and allowed values."""
    if not isinstance(raw, dict):
        _fail(path, "The experiment must be a TOML table.")
    for key in raw:
        if key not in TOP_KEYS:
            _fail(path, f"Unknown key {key!r}. Allowed keys: {', '.join(TOP_KEYS)}.")
    if "name" not in raw or not isinstance(raw["name"], str) or not raw["name"].strip() or "/" in raw["name"]:
        _fail(path, f"'name' must be a non-empty string without '/'. Got {clip(repr(raw.get('name')))}.")
    if len(raw["name"].strip()) > MAX_NAME:
        _fail(
            path,
            f"'name' must be at most {MAX_NAME} characters: it starts every study, MLflow experiment "
            f"and run name (MLflow keeps 250). Got {len(raw['name'].strip())} characters; shorten it.",
        )
    if "datasets" not in raw:
        _fail(path, "'datasets' is required: a list of dataset names (see `logreg datasets`).")
    kw: dict[str, Any] = {"name": raw["name"].strip(), "path": path}
    kw["datasets"] = _names(path, "datasets", raw["datasets"], None, check=check_dataset_name)
    for key, allowed in (
        ("models", MODEL_NAMES),
        ("impls", IMPL_NAMES),
        ("optimizers", OPTIMIZER_NAMES),
        ("devices", DEVICE_NAMES),
    ):
        if key in raw:
            kw[key] = _names(path, key, raw[key], allowed)
    if "compile" in raw:
        value = [raw["compile"]] if isinstance(raw["compile"], bool) else raw["compile"]
        kw["compile"] = tuple(dict.fromkeys(_check(path, "compile", value, ListOf(Options((False, True))))))
    for key, low in (("n_trials", 1), ("epochs", 1), ("seed", 0), ("eval_every", 1), ("repeats", 1)):
        if key in raw:
            kw[key] = _int(path, key, raw[key], low)
    for key, allowed in (("objective", tuple(OBJECTIVES)), ("dtype", DTYPE_NAMES)):
        if key in raw:
            kw[key] = _check(path, key, raw[key], Options(allowed))
    if "sampler" in raw:
        kw["sampler"] = _check_table(path, "sampler", raw["sampler"], SAMPLERS, SAMPLER_KEYS)
    if "pruner" in raw:
        kw["pruner"] = _check_table(
            path,
            "pruner",
            raw["pruner"],
            PRUNERS,
            {
                "median": ("n_startup_trials", "n_warmup_steps"),
                "hyperband": ("min_resource", "reduction_factor"),
                "none": (),
            },
        )
    if "search" in raw:
        kw["search"] = _check_search(path, raw["search"], grid=kw.get("sampler", {}).get("name") == "grid")
    exp = Experiment(**kw)
    _check_models(path, exp)
    if not exp.cells():
        _fail(path, "No cell to run: the numpy implementation runs on the CPU only. Add device 'cpu'.")
    _check_grid_fits(exp)
    return exp


def _check_models(path: str, exp: Experiment) -> None:
    """Every dataset suits one of the models; the objective exists for every model; warm-ups fit."""
    for d in exp.datasets:
        if not any(suits(d, m) for m in exp.models):
            fix = "add 'linear' to models" if suits(d, "linear") else "add 'logistic' or 'mlp' to models"
            _fail(path, f"Dataset {d!r} suits none of models {list(exp.models)}: {fix}, or drop the dataset.")
    linear = any(c.model == "linear" for c in exp.cells())
    classifier = any(c.model != "linear" for c in exp.cells())
    if exp.objective == "val_accuracy" and linear:
        _fail(path, "objective 'val_accuracy' does not apply to model 'linear'. Use val_loss or val_r2.")
    if exp.objective == "val_r2" and classifier:
        _fail(path, "objective 'val_r2' applies to model 'linear' only. Use val_loss or val_accuracy.")
    for opt, space in exp.search.items():
        if "warmup_epochs" in space:
            epochs = space["epochs"][0] if "epochs" in space else exp.epochs
            if space["warmup_epochs"][1] >= epochs:
                _fail(
                    path,
                    f"'search.{opt}.warmup_epochs' must stay below epochs ({epochs}). "
                    f"Got {space['warmup_epochs']!r}.",
                )


def _check_grid_fits(exp: Experiment) -> None:
    """A grid runs whole: one larger than n_trials is an error; the gp sampler needs GPSampler."""
    for opt in exp.optimizers if exp.grid else ():
        size = exp.grid_size(opt)
        if size > exp.n_trials:
            dims = " x ".join(f"{k} {len(v)}" for k, v in exp.search_space(opt).items())
            _fail(
                exp.path,
                f"The grid of [search.{opt}] has {size} points ({dims}) but n_trials is "
                f"{exp.n_trials}. Set n_trials = {size} (a grid runs whole) or remove points.",
            )
    if exp.sampler["name"] == "gp":
        from logreg.tune.storage import import_optuna

        optuna = import_optuna()
        if not hasattr(optuna.samplers, "GPSampler"):
            _fail(
                exp.path,
                f"The 'gp' sampler needs an Optuna with GPSampler (3.6 or later); this one is "
                f"{optuna.__version__}. Use sampler 'tpe' or upgrade optuna.",
            )


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment TOML file."""
    p = Path(path)
    if not p.exists():
        raise LogregError(f"Experiment file '{p}' not found. Pass a path such as experiments/default.toml.")
    if p.is_dir():
        raise LogregError(f"'{p}' is a directory. Pass an experiment .toml file.")
    text = p.read_bytes()
    if not text.strip():
        raise LogregError(f"Experiment file '{p}' is empty. See experiments/default.toml for the schema.")
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LogregError(f"Experiment file '{p}' is not valid TOML: {exc}. Fix the syntax.") from None
    return validate(raw, str(p))
