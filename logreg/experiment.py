"""Experiment files (experiments/*.toml): the sweep's one validated config object (docs/experiments.md).

A file names the cells (datasets x models x impls x optimizers x devices x compile), the budget
(n_trials per cell, epochs), the objective, the sampler and pruner, and per optimizer the search
space: [low, high] ranges, or a grid's explicit points with sampler 'grid'.
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
SAMPLER_KEYS = {
    "tpe": ("n_startup_trials",),
    "random": (),
    "qmc": (),
    "gp": ("n_startup_trials",),
    "grid": (),
}
SAMPLERS = tuple(SAMPLER_KEYS)
PRUNER_KEYS = {
    "median": ("n_startup_trials", "n_warmup_steps"),
    "hyperband": ("min_resource", "reduction_factor"),
    "none": (),
}
PRUNERS = tuple(PRUNER_KEYS)
TOP_KEYS = ("name", "datasets", "models", "impls", "optimizers", "devices", "compile", "n_trials", "epochs",
            "seed", "objective", "eval_every", "dtype", "repeats", "sampler", "pruner", "search")  # fmt: skip
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
        return validate(as_dict(replace(self, **changes)), self.path) if changes else self


def as_dict(exp: Experiment) -> dict[str, Any]:
    return {k: getattr(exp, k) for k in TOP_KEYS}


def _fail(path: str, msg: str) -> None:
    raise LogregError((f"{Path(path).name}: " if path else "") + msg)


def _check(path: str, key: str, value: Any, constraint) -> Any:
    """validation.check_param, with the file's name in front of the message."""
    try:
        check_param(key, value, constraint)
    except LogregError as exc:
        _fail(path, str(exc))
    return value


def _names(path, key, value, allowed=None, check=None) -> tuple[str, ...]:
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


def _number(v, integer: bool = False) -> bool:
    return isinstance(v, int if integer else (int, float)) and not isinstance(v, bool)


def _span(path, key, value, grid: bool, *, low, high, log=False, integer=False) -> list:
    """[low, high] within the key's bounds, or (a grid) distinct points within them."""
    ok = isinstance(value, list) and value and all(_number(v, integer) for v in value)
    ok = ok and all(low <= v <= high and (not log or v > 0) for v in value)
    ok = ok and (len(set(value)) == len(value) if grid else len(value) == 2 and value[0] <= value[1])
    if not ok:
        kind, op = "integers" if integer else "numbers", "<" if log else "<="
        what = (
            f"a grid: a list of distinct {kind} with {low} {op} point <= {high}, e.g. [1e-3, 1e-2, 1e-1]"
            if grid
            else f"[low, high] {kind} with {low} {op} low <= high <= {high}"
        )
        _fail(path, f"'{key}' must be {what}. Got {clip(repr(value))}.")
    return list(value)


# The choices a search key takes: (test of one choice, how to say it).
NAMES_FROM = "a non-empty list of choices: names from "
CHOICES = {
    "schedule": (lambda v: v in SCHEDULE_NAMES, NAMES_FROM + ", ".join(SCHEDULE_NAMES)),
    "activation": (lambda v: v in ACTIVATION_NAMES, NAMES_FROM + ", ".join(ACTIVATION_NAMES)),
    "hidden": (lambda v: _number(v, True) and v >= 1, "a non-empty list of choices: integers >= 1"),
    "nesterov": (lambda v: isinstance(v, bool), "a list of true/false choices"),
    "batch_size": (
        lambda v: v == "full" or (_number(v, True) and v >= 1),
        'a list of choices: "full" or integers >= 1',
    ),
}


def _space(path: str, opt: str, space: Any, grid: bool) -> dict[str, Any]:
    if not isinstance(space, dict):
        _fail(path, f"[search.{opt}] must be a table. Got {clip(repr(space))}.")
    checked: dict[str, Any] = {}
    for key, value in space.items():
        k = f"search.{opt}.{key}"
        if key not in SEARCH_KEYS[opt]:
            _fail(path, f"Unknown key {k!r}. Allowed keys for {opt}: {', '.join(SEARCH_KEYS[opt])}.")
        if key in RANGES:
            checked[key] = _span(path, k, value, grid, **RANGES[key])
            continue
        test, what = CHOICES[key]
        if not (isinstance(value, list) and value and all(test(v) for v in value)):
            _fail(path, f"{k!r} must be {what}. Got {clip(repr(value))}.")
        checked[key] = list(dict.fromkeys(value))
    checked.setdefault("lr", list(DEFAULT_GRID_LR) if grid else DEFAULT_SEARCH[opt]["lr"])
    return checked


def _check_search(path: str, search: Any, grid: bool = False) -> dict:
    if not isinstance(search, dict):
        _fail(path, f"'search' must be a table of optimizer tables. Got {clip(repr(search))}.")
    for opt in search:
        if opt not in SEARCH_KEYS:
            _fail(path, f"Unknown optimizer table [search.{opt}]. Allowed: {', '.join(SEARCH_KEYS)}.")
    return {opt: _space(path, opt, space, grid) for opt, space in search.items()}


def _check_table(path, key, value, allowed_keys: dict[str, tuple]) -> dict:
    """[sampler] or [pruner]: a name and that name's integer settings (a bare name is the table)."""
    value = {"name": value} if isinstance(value, str) else value
    if not isinstance(value, dict):
        _fail(path, f"'{key}' must be a table with a 'name'. Got {clip(repr(value))}.")
    name = _check(path, f"{key}.name", value.get("name"), Options(tuple(allowed_keys)))
    for k, v in value.items():
        if k != "name" and k not in allowed_keys[name]:
            allowed = ", ".join(allowed_keys[name]) or "none"
            _fail(path, f"Unknown key '{key}.{k}' for {name}. Allowed: {allowed}.")
        if k != "name":
            _check(path, f"{key}.{k}", v, Interval(int, 0))
    return dict(value)


def _check_name(path: str, raw: dict) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        _fail(path, f"'name' must be a non-empty string without '/'. Got {clip(repr(name))}.")
    if len(name.strip()) > MAX_NAME:
        _fail(
            path,
            f"'name' must be at most {MAX_NAME} characters: it starts every study, MLflow experiment "
            f"and run name (MLflow keeps 250). Got {len(name.strip())} characters; shorten it.",
        )
    return name.strip()


def validate(raw: dict[str, Any], path: str = "") -> Experiment:
    """Check an experiment dict key by key; raise LogregError naming the key and allowed values."""
    if not isinstance(raw, dict):
        _fail(path, "The experiment must be a TOML table.")
    for key in raw:
        if key not in TOP_KEYS:
            _fail(path, f"Unknown key {key!r}. Allowed keys: {', '.join(TOP_KEYS)}.")
    kw: dict[str, Any] = {"name": _check_name(path, raw), "path": path}
    if "datasets" not in raw:
        _fail(path, "'datasets' is required: a list of dataset names (see `logreg datasets`).")
    kw["datasets"] = _names(path, "datasets", raw["datasets"], check=check_dataset_name)
    for key, allowed in (("models", MODEL_NAMES), ("impls", IMPL_NAMES), ("optimizers", OPTIMIZER_NAMES),
                         ("devices", DEVICE_NAMES)):  # fmt: skip
        if key in raw:
            kw[key] = _names(path, key, raw[key], allowed)
    if "compile" in raw:
        value = [raw["compile"]] if isinstance(raw["compile"], bool) else raw["compile"]
        kw["compile"] = tuple(dict.fromkeys(_check(path, "compile", value, ListOf(Options((False, True))))))
    for key, low in (("n_trials", 1), ("epochs", 1), ("seed", 0), ("eval_every", 1), ("repeats", 1)):
        if key in raw:
            kw[key] = _check(path, key, raw[key], Interval(int, low))
    for key, allowed in (("objective", tuple(OBJECTIVES)), ("dtype", DTYPE_NAMES)):
        if key in raw:
            kw[key] = _check(path, key, raw[key], Options(allowed))
    for key, allowed_keys in (("sampler", SAMPLER_KEYS), ("pruner", PRUNER_KEYS)):
        if key in raw:
            kw[key] = _check_table(path, key, raw[key], allowed_keys)
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
            fix = "add " + " or ".join(repr(m) for m in MODEL_NAMES if suits(d, m)) + " to models"
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
    """A grid runs whole: one larger than n_trials is an error."""
    for opt in exp.optimizers if exp.grid else ():
        size = exp.grid_size(opt)
        if size > exp.n_trials:
            dims = " x ".join(f"{k} {len(v)}" for k, v in exp.search_space(opt).items())
            _fail(
                exp.path,
                f"The grid of [search.{opt}] has {size} points ({dims}) but n_trials is "
                f"{exp.n_trials}. Set n_trials = {size} (a grid runs whole) or remove points.",
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
