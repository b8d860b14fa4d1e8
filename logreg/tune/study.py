"""Optuna studies: one per cell, its sampler and pruner, its trials.

One study per cell (dataset x model x impl x optimizer x device), named
`<experiment>/<dataset>/<impl>/<optimizer>/<device>` (logistic) or
`<experiment>/<dataset>/<model>/<impl>/<optimizer>/<device>` (mlp, linear). Each trial is one
`train(config)`; its MLflow child run is written by the Tracker.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logreg.config import TrainConfig
from logreg.errors import LogregError
from logreg.tune.experiment import Cell, Experiment
from logreg.tune.proxy import fail_long_running_trials, is_proxy
from logreg.tune.storage import fail_running_trials, grace_period, import_optuna, storage_errors


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


def open_study(exp: Experiment, cell, storage):
    """Create the cell's study, or load it to resume (load_if_exists)."""
    optuna = import_optuna()
    name = exp.study_name(cell)
    with storage_errors(storage):
        return optuna.create_study(
            storage=storage,
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


def storage_of(study):
    """The storage a study reads and writes (Optuna has no public accessor)."""
    return study._storage  # noqa: SLF001


def finished_states():
    optuna = import_optuna()
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def has_waiting(study) -> bool:
    """Whether trials wait to run: the retry Optuna queues for a trial a dead worker left."""
    optuna = import_optuna()
    with storage_errors(storage_of(study)):
        return bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def count_finished(study) -> int:
    """Trials that count towards n_trials: complete, pruned, or failed by divergence.

    Trials that crashed or were interrupted do not count: a re-run retries them.
    """
    optuna = import_optuna()
    n = 0
    with storage_errors(storage_of(study)):
        trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state in finished_states() or (
            t.state == optuna.trial.TrialState.FAIL
            and str(t.user_attrs.get("fail_reason", "")).startswith("diverged")
        ):
            n += 1
    return n


@dataclass
class TrialOutcome:
    """What one trial gave, for progress reporting."""

    number: int
    state: str
    value: float | None


class _Objective:
    """One trial: suggest a config, train it, tell the hooks how it ended.

    `told` keeps what the objective gave Optuna, should Ctrl-C cut Optuna's tell short.
    """

    def __init__(self, exp: Experiment, cell, hooks: dict[str, Callable], overrides: dict[str, Any]):
        self.exp, self.cell, self.hooks, self.overrides = exp, cell, hooks, overrides
        self.pruning = exp.pruner["name"] != "none"
        self.told: dict[str, Any] = {}

    def _on_eval(self, trial, history: list):
        optuna = import_optuna()

        def on_eval(epoch: int, metrics: dict[str, float]) -> None:
            history.append((epoch, metrics))
            if self.pruning:  # intermediate values serve the pruner; the curves are in MLflow anyway
                trial.report(metrics[self.exp.objective], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return on_eval

    def __call__(self, trial) -> float:
        optuna = import_optuna()
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Whatever raised (a config that cannot train, a tracking hook) counts as this cell's
            # error, so run_cell stops at max_errors instead of retrying the trial for ever.
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:1000])
            raise

    def _run(self, trial) -> float:
        optuna = import_optuna()
        from logreg.train import train

        finish, told = self.hooks["finish"], self.told
        told.clear()
        told["trial"] = trial
        config = suggest_config(trial, self.exp, self.cell)
        if self.overrides:  # the sweep's --torch-threads: a param of every trial
            config = config.replace(**self.overrides)
        trial.set_user_attr("config", config.to_params())
        trial.set_user_attr("worker", worker_id())
        handle = self.hooks["start"](trial, config)
        history: list[tuple[int, dict]] = []
        try:
            optimum = self.hooks["optimum"](config) if "optimum" in self.hooks else None
            result = train(config, on_eval=self._on_eval(trial, history), optimum=optimum)
        except optuna.TrialPruned:
            finish(handle, trial, "PRUNED", None, history, None)
            told["state"] = optuna.trial.TrialState.PRUNED
            raise
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason[:1000])
            state = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "FAIL"
            finish(handle, trial, state, None, history, reason)
            raise
        if result.diverged:
            trial.set_user_attr("fail_reason", f"diverged: {result.message}")
            finish(handle, trial, "DIVERGED", result, history, result.message)
            told["state"] = optuna.trial.TrialState.FAIL
            return float("nan")  # Optuna marks it FAIL; it never counts as best
        summary = {**result.metrics, **result.timings}
        trial.set_user_attr("result", {k: v for k, v in summary.items() if math.isfinite(v)})
        finish(handle, trial, "COMPLETE", result, history, None)
        told["value"] = result.metrics[self.exp.objective]
        return told["value"]


def _raised(trial) -> bool:
    """A failed trial that raised (not one that diverged, which counts as finished, nor one
    failed by a heartbeat check, which has no fail_reason)."""
    reason = str(trial.user_attrs.get("fail_reason", ""))
    return bool(reason) and not reason.startswith("diverged")


def _failed_meanwhile(exc: BaseException) -> bool:
    """Optuna's tell refused: the trial was failed by another worker's heartbeat check meanwhile."""
    return isinstance(exc, ValueError) and "Cannot tell a FAIL trial" in str(exc)


def run_cell(
    exp: Experiment,
    cell,
    study,
    objective_hooks: dict[str, Callable],
    *,
    max_errors: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    overrides: dict[str, Any] | None = None,
) -> int:
    """Run trials of one study until it has n_trials finished trials (a grid: its whole grid).

    Returns how many ran.

    `objective_hooks` supplies: `start(trial, config)` -> handle,
    `finish(handle, trial, state, result, history, error)` and `done(outcome)`; optionally
    `optimum(config)` -> the F* to log suboptimality against (logreg.optimum.optimum_for).
    A trial that raises ends FAILED (the error kept as `fail_reason`) and the cell goes on,
    up to `max_errors` (default n_trials) errors in this call. `overrides` (TrainConfig fields,
    e.g. torch_threads, compile) replace the suggested values in every trial's config.
    """
    optuna = import_optuna()
    fail = (optuna.trial.TrialState.FAIL,)
    objective = _Objective(exp, cell, objective_hooks, overrides or {})
    target = exp.trials_per_cell(cell[2])
    max_errors = target if max_errors is None else max_errors
    ran = errors = 0

    def callback(study, frozen):
        objective_hooks["done"](TrialOutcome(frozen.number, frozen.state.name, frozen.value))

    proxy = is_proxy(storage_of(study))
    # A queued retry runs even when the count is reached: Optuna's promise to a dead worker's trial.
    while not stop() and (count_finished(study) < target or has_waiting(study)):
        if proxy:  # no heartbeats through the proxy: fail what a dead worker left RUNNING
            fail_stale_trials(study)
        with storage_errors(storage_of(study)):
            before = len(study.get_trials(deepcopy=False, states=fail))
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[callback])
            except BaseException as exc:
                if _failed_meanwhile(exc):
                    # This process was starved past the heartbeat grace period, and another
                    # worker failed its trial as stale (and queued a retry): Optuna keeps FAIL.
                    continue
                if not _interrupted(exc):
                    raise
                _finish_tell(study, objective.told)
                raise KeyboardInterrupt from None
            failed = study.get_trials(deepcopy=False, states=fail)
        ran += 1
        if len(failed) > before and _raised(failed[-1]):
            errors += 1
            if errors >= max_errors:
                raise LogregError(
                    f"Study {study.study_name}: {errors} trials raised errors (last: "
                    f"{failed[-1].user_attrs.get('fail_reason', '?')}). Fix the cause and re-run to resume."
                )
    return ran


def _interrupted(exc: BaseException | None) -> bool:
    """Ctrl-C/SIGTERM, possibly replaced by an error Optuna raised while handling it."""
    for _ in range(6):
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def _finish_tell(study, told: dict[str, Any]) -> None:
    """Ctrl-C after the objective returned, inside Optuna's tell: record what the trial gave.

    Otherwise the trial would stay RUNNING (journal storages have no heartbeat) while its MLflow
    run already says how it ended.
    """
    optuna = import_optuna()
    trial = told.get("trial")
    if trial is None:
        return
    with contextlib.suppress(Exception):
        if storage_of(study).get_trial(trial._trial_id).state != optuna.trial.TrialState.RUNNING:  # noqa: SLF001
            return
        if "value" in told:
            study.tell(trial, told["value"])
        else:
            study.tell(trial, state=told.get("state", optuna.trial.TrialState.FAIL))


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


def fail_stale_trials(study) -> list[int]:
    """Mark trials of dead workers failed; return their numbers.

    RDB storages: trials without a heartbeat for the grace period (and Optuna retries them), and
    trials whose process died before their first heartbeat (_fail_unstarted). The gRPC proxy:
    trials RUNNING longer than LOGREG_PROXY_STALE_AFTER (tune.proxy). Journal files: none (no way
    to tell a dead worker from a slow one).
    """
    optuna = import_optuna()
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = storage_of(study)
    if is_proxy(storage):
        with storage_errors(storage):
            return fail_long_running_trials(study, storage)
    # create_study wraps an RDBStorage in a cache: ask for heartbeats, not for the class.
    if not is_heartbeat_enabled(storage):
        return []
    running = (optuna.trial.TrialState.RUNNING,)
    with storage_errors(storage_of(study)):
        before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
        optuna.storages.fail_stale_trials(study)
        unstarted = _fail_unstarted(study, storage)
        after = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    return sorted((before - after) | set(unstarted))


def _fail_unstarted(study, storage) -> list[int]:
    """Fail RUNNING trials that never reached the objective (no `config` attr) for longer than the
    grace period: their process died between Optuna's ask and the trial's first heartbeat (a
    SIGKILL, the database going away), and Optuna's heartbeat check skips trials with no
    heartbeat at all, so they would stay RUNNING for ever. A live trial sets `config` within
    milliseconds of its start. No retry is queued: the trial had no parameters to retry."""
    return fail_running_trials(study, storage, grace_period(), spare=lambda t: "config" in t.user_attrs)
