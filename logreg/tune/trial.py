"""One trial, and a cell's trials: the objective builds a TrialOutcome once, observers record it.

The life of a trial (docs/engine.md):
  run_cell asks Optuna for one trial: study.optimize(n_trials=1), whose heartbeats RDB storages need
  -> Objective: the config (tune.study), its F* started (tune.solver), train (logreg.train)
  -> Optuna tells the trial's state: the trial's record is complete
  -> observer.trial_ended(outcome): tune.cell writes its MLflow run, whole, once (tracking.runs)

Ctrl-C and SIGTERM set a flag (tune.sweep); training stops after its current epoch (Interrupted),
Optuna marks the trial failed, its run is written KILLED, and the interrupt goes on up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from logreg.data import load_split
from logreg.errors import LogregError
from logreg.experiment import Experiment
from logreg.optimum import Optimum
from logreg.train import train
from logreg.tune.optuna_lib import import_optuna
from logreg.tune.study import count_finished, has_waiting, suggest_config, worker_id


@dataclass(frozen=True)
class TrialOutcome:
    """Everything one trial gave, built once by the objective (what its MLflow run records)."""

    number: int
    state: str
    """COMPLETE, PRUNED, DIVERGED (an Optuna FAIL that counts), FAIL or INTERRUPTED."""
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """The TrainConfig as params ({} when it could not be built)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Final metrics and timings (nothing for a trial that did not finish training)."""
    history: dict[str, list] = field(default_factory=dict)
    """Per evaluation point, with 'epoch'."""
    optimum: Optimum | None = None
    optimum_error: str = ""
    error: str = ""
    split: Any = None
    """The trial's Split (None when it could not be loaded)."""


class TrialObserver(Protocol):
    """What hears of each trial once Optuna has recorded how it ended."""

    def trial_ended(self, outcome: TrialOutcome) -> None: ...


class _FStar:
    """train()'s `optimum`: asked after the last epoch; an F* that cannot be solved is a message."""

    def __init__(self, start: Callable[[], Optimum | None]):
        self.start, self.value, self.error = start, None, ""

    def __call__(self) -> Optimum | None:
        try:
            self.value = self.start()
        except Exception as exc:  # noqa: BLE001 - a side metric: say why, never fail the trial (Interrupted passes)
            self.error = f"F* could not be computed: {type(exc).__name__}: {exc}"[:1000]
        return self.value


class Objective:
    """One trial for study.optimize: its outcome is in `.outcome` once Optuna has it."""

    def __init__(self, exp: Experiment, cell, overrides: dict, solver, should_stop: Callable[[], bool]):
        self.exp, self.cell, self.overrides, self.solver = exp, cell, overrides, solver
        self.should_stop = should_stop
        self.number: int | None = None
        self.outcome: TrialOutcome | None = None

    def __call__(self, trial) -> float:
        optuna = import_optuna()
        self.number = trial.number
        history: list[tuple[int, dict]] = []
        config = split = fstar = None
        try:
            config = suggest_config(trial, self.exp, self.cell).replace(**self.overrides)
            trial.set_user_attr("config", config.to_params())
            trial.set_user_attr("worker", worker_id())
            split = load_split(config)
            fstar = _FStar(self.solver.start(config, split, self.should_stop)) if self.solver else None
            on_eval = self._on_eval(trial, history)
            result = train(config, split=split, on_eval=on_eval, optimum=fstar, should_stop=self.should_stop)
        except optuna.TrialPruned:
            self._end(trial.number, "PRUNED", config, split, history)
            raise
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"[:1000]
            state = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "FAIL"
            self._end(trial.number, state, config, split, history, error=reason)
            trial.set_user_attr("fail_reason", reason)
            raise
        extra = {"optimum": fstar.value, "optimum_error": fstar.error} if fstar else {}
        if result.diverged:
            trial.set_user_attr("fail_reason", f"diverged: {result.message}"[:1000])
            self._end(
                trial.number, "DIVERGED", config, split, result.history, result, result.message, **extra
            )
            return float("nan")  # Optuna marks it FAIL; it counts as finished, never as best
        value = result.metrics[self.exp.objective]
        trial.set_user_attr("result", {k: v for k, v in _summary(result).items() if math.isfinite(v)})
        self._end(trial.number, "COMPLETE", config, split, result.history, result, value=value, **extra)
        return value

    def _on_eval(self, trial, history: list):
        optuna = import_optuna()
        pruning = self.exp.pruner["name"] != "none"

        def on_eval(epoch: int, metrics: dict[str, float]) -> None:
            history.append((epoch, metrics))
            if pruning:  # intermediate values serve the pruner; the curves go to MLflow anyway
                trial.report(metrics[self.exp.objective], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        return on_eval

    def _end(self, number, state, config, split, history, result=None, error="", value=None, **optimum):
        if state != "COMPLETE" and self.solver is not None:
            self.solver.cancel()
        self.outcome = TrialOutcome(
            number=number,
            state=state,
            value=value,
            params=config.to_params() if config is not None else {},
            metrics=_summary(result) if result is not None else {},
            history=_history(history) if isinstance(history, list) else dict(history),
            error=error,
            split=split,
            **optimum,
        )


def _history(points: list[tuple[int, dict]]) -> dict[str, list]:
    """{'epoch': [...], key: [...]} from the evaluation points a trial reached."""
    keys = points[0][1] if points else {}
    return {"epoch": [e for e, _ in points], **{k: [m[k] for _, m in points] for k in keys}}


def _summary(result) -> dict[str, float]:
    return {**result.metrics, **result.timings}


def run_cell(
    exp: Experiment,
    cell,
    study,
    store,
    observers: Sequence[TrialObserver | None] = (),
    *,
    solver=None,
    overrides: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_errors: int | None = None,
) -> int:
    """Run trials of one study until it has n_trials finished ones (a grid: its whole grid), and
    any retry Optuna queued for a dead worker's trial; return how many ran here.

    A trial that raises ends FAIL (its error kept as `fail_reason`) and the cell goes on, up to
    `max_errors` (default n_trials) errors in this call. `overrides` (TrainConfig fields) replace
    the suggested values in every trial's config.
    """
    target = exp.trials_per_cell(cell[2])
    max_errors = target if max_errors is None else max_errors
    ran = errors = 0
    with store.errors():
        while count_finished(study) < target or has_waiting(study):
            if should_stop():
                raise KeyboardInterrupt("stopped between trials")
            store.fail_stale(study)
            objective = Objective(exp, cell, overrides or {}, solver, should_stop)
            try:
                told = _run_one(study, objective)
            except KeyboardInterrupt:
                _tell(observers, objective.outcome)  # the interrupted trial's run: KILLED
                raise
            if not told:
                continue  # failed meanwhile by another worker: its run is the cell's reconcile's
            outcome = objective.outcome
            _tell(observers, outcome)
            ran += 1
            errors += outcome.state == "FAIL"
            if errors >= max_errors:
                raise LogregError(
                    f"Study {study.study_name}: {errors} trials raised errors (last: {outcome.error}). "
                    "Fix the cause and re-run to resume."
                )
    return ran


def _tell(observers: Sequence[TrialObserver | None], outcome: TrialOutcome | None) -> None:
    for observer in observers if outcome is not None else ():
        if observer is not None:
            observer.trial_ended(outcome)


def _run_one(study, objective: Objective) -> bool:
    """One trial through study.optimize; False when Optuna could not tell it because it was
    finished meanwhile elsewhere (another worker's heartbeat check failed it while this process
    was starved past the grace period): Optuna keeps that state, and the retry it queued."""
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,))
    except KeyboardInterrupt:
        raise
    except Exception:
        # The objective's own errors are caught by Optuna: this one came from telling the trial.
        # Reading the trials back also says whether the storage itself is lost (one line).
        mine = [t for t in study.get_trials(deepcopy=False) if t.number == objective.number]
        if objective.number is None or not mine or not mine[0].state.is_finished():
            raise
        return False
    return True
