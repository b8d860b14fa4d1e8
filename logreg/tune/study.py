"""Optuna studies: one per cell, its sampler and pruner, the config a trial suggests, its counts.

One study per cell (dataset x model x impl x optimizer x device), named
`<experiment>/<dataset>/<impl>/<optimizer>/<device>` (logistic) or
`<experiment>/<dataset>/<model>/<impl>/<optimizer>/<device>` (mlp, linear). A trial is run by
tune.trial; its MLflow run is written by tune.cell.
"""

from __future__ import annotations

import os
import socket
import zlib
from typing import Any

from logreg.config import TrainConfig
from logreg.errors import LogregError
from logreg.experiment import Cell, Experiment
from logreg.tune.optuna_lib import import_optuna


def _cell_seed(exp: Experiment, study_name: str) -> int:
    # Stable across runs and processes (unlike hash()), different per cell.
    return (exp.seed * 1_000_003 + zlib.crc32(study_name.encode())) % 2**31


def worker_id() -> str:
    """HOST:PID of this process: the trial attribute `worker` says which process ran a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_sampler(exp: Experiment, study_name: str, optimizer: str | None = None):
    """The cell's sampler, seeded from the experiment's seed and the study name.

    `grid` needs the cell's optimizer (its search table is the grid); the grid's order is
    shuffled with the seed.
    """
    optuna = import_optuna()
    seed = _cell_seed(exp, study_name)
    name = exp.sampler["name"]
    startup = exp.sampler.get("n_startup_trials", 5)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    if name == "gp":
        if not hasattr(optuna.samplers, "GPSampler"):
            raise LogregError(
                f"The 'gp' sampler needs an Optuna with GPSampler (3.6 or later); this one is "
                f"{optuna.__version__}. Use sampler 'tpe' or upgrade optuna."
            )
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "grid":
        optimizer = optimizer or study_name.split("/")[-2]  # <...>/<optimizer>/<device>
        return optuna.samplers.GridSampler(exp.search_space(optimizer), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(exp: Experiment):
    optuna = import_optuna()
    p = exp.pruner
    if p["name"] == "none":
        return optuna.pruners.NopPruner()
    if p["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.get("min_resource", exp.eval_every),
            max_resource=exp.epochs,
            reduction_factor=p.get("reduction_factor", 3),
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.get("n_startup_trials", 4), n_warmup_steps=p.get("n_warmup_steps", 10)
    )


def open_study(exp: Experiment, cell, store):
    """Create the cell's study in a tune.storage.Store, or load it to resume (load_if_exists)."""
    optuna = import_optuna()
    name = exp.study_name(cell)
    with store.errors():
        return optuna.create_study(
            storage=store.optuna,
            study_name=name,
            direction=exp.direction,
            sampler=make_sampler(exp, name, cell[2]),
            pruner=make_pruner(exp),
            load_if_exists=True,
        )


def suggest_config(trial, exp: Experiment, cell) -> TrainConfig:
    """The TrainConfig of a trial: the cell, the experiment's settings and the sampled values."""
    dataset, impl, optimizer, device, model, compiled = Cell(*cell)
    space = exp.search_space(optimizer)
    kw: dict[str, Any] = {"lr": trial.suggest_float("lr", *_span(space["lr"]), log=True)}
    if optimizer == "momentum":
        kw["momentum"] = trial.suggest_float("momentum", *_span(space.get("momentum", [0.9])))
        if "nesterov" in space:
            kw["nesterov"] = trial.suggest_categorical("nesterov", space["nesterov"])
    if optimizer == "adam" and ("beta1" in space or "beta2" in space):
        kw["betas"] = (
            trial.suggest_float("beta1", *_span(space.get("beta1", [0.9]))),
            trial.suggest_float("beta2", *_span(space.get("beta2", [0.999]))),
        )
    if "weight_decay" in space:
        kw["weight_decay"] = trial.suggest_float("weight_decay", *_span(space["weight_decay"]), log=True)
    if "batch_size" in space:
        choice = trial.suggest_categorical("batch_size", space["batch_size"])
        kw["batch_size"] = None if choice == "full" else choice
    kw["epochs"] = trial.suggest_int("epochs", *_span(space["epochs"])) if "epochs" in space else exp.epochs
    kw.update(_suggest_schedule(trial, space))
    if model == "mlp":
        if "hidden" in space:
            kw["hidden"] = trial.suggest_categorical("hidden", space["hidden"])
        if "activation" in space:
            kw["activation"] = trial.suggest_categorical("activation", space["activation"])
    return TrainConfig(
        dataset=dataset,
        model=model,
        impl=impl,
        optimizer=optimizer,
        device=device,
        compile=compiled,
        dtype=exp.dtype,
        seed=exp.seed,
        eval_every=exp.eval_every,
        **kw,
    )


def _suggest_schedule(trial, space: dict[str, Any]) -> dict[str, Any]:
    """The schedule and its parameters; gamma / step_size only when the drawn schedule uses them."""
    kw: dict[str, Any] = {}
    if "schedule" in space:
        kw["schedule"] = trial.suggest_categorical("schedule", space["schedule"])
    schedule = kw.get("schedule", "constant")
    if "gamma" in space and schedule in ("step", "exponential"):
        kw["gamma"] = trial.suggest_float("gamma", *_span(space["gamma"]))
    if "step_size" in space and schedule == "step":
        kw["step_size"] = trial.suggest_int("step_size", *_span(space["step_size"]))
    if "warmup_epochs" in space:
        kw["warmup_epochs"] = trial.suggest_int("warmup_epochs", *_span(space["warmup_epochs"]))
    return kw


def _span(values: list) -> tuple:
    """(low, high) of a [low, high] range or of a grid's points.

    A grid's parameters keep the distributions the other samplers use (GridSampler returns its
    points from them), so every sampler's trials read alike; low == high fixes the value.
    """
    return min(values), max(values)


def finished_states():
    optuna = import_optuna()
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def has_waiting(study) -> bool:
    """Whether trials wait to run: the retry Optuna queues for a trial a dead worker left."""
    optuna = import_optuna()
    return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def diverged(trial) -> bool:
    """A trial failed because its training diverged: it counts as finished (never as best)."""
    return str(trial.user_attrs.get("fail_reason", "")).startswith("diverged")


def count_finished(study) -> int:
    """Trials that count towards n_trials: complete, pruned, or failed by divergence.

    Trials that crashed or were interrupted do not count: a re-run retries them.
    """
    done = finished_states()
    return sum(t.state in done or diverged(t) for t in study.get_trials(deepcopy=False))


def best_trial(study):
    """The best complete trial, or None (diverged and pruned trials never count)."""
    optuna = import_optuna()
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    return study.best_trial


def study_frame(study) -> list[dict[str, Any]]:
    """Plain rows (number, state, value, params, intermediate values) for plots and tables."""
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": dict(t.params),
            "intermediate": dict(t.intermediate_values),
            "user_attrs": dict(t.user_attrs),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def param_importances(study) -> dict[str, float]:
    """Optuna's parameter importances ({} when too few complete trials to tell)."""
    optuna = import_optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
