"""The MLflow side of one study: its parent run, one run per trial written whole, and reconcile.

CellRuns is the TrialObserver of a tracked cell: `trial_ended(outcome)` writes the trial's run
once (tracking.runs), after Optuna has recorded the trial. `reconcile(study)` makes MLflow agree
with Optuna, the record: every finished trial has exactly one run with its status. A run is
missing only when a process died between Optuna's tell and the write (or the store was down):
it is written from the trial Optuna kept (params, final metrics, the error), tagged
`logreg.rebuilt`. A trial that a dead worker left is failed by Optuna's own machinery
(tune.storage) and gets its KILLED run here. Two processes reconciling one cell together may
both write a missing run: each keeps the oldest and deletes its own otherwise.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.experiment import Cell, Experiment
from logreg.model import save_model
from logreg.optimum import optimum_for
from logreg.report import plots as figures
from logreg.tracking import RunRecord, dataset_inputs, dataset_tags, environment_tags
from logreg.train import train
from logreg.tune import study as st
from logreg.tune.trial import TrialOutcome

# How each way a trial ends shows in MLflow (the tag logreg.trial_state keeps the trial's own).
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "DIVERGED": "FAILED", "FAIL": "FAILED"}
RUN_STATUS |= {"INTERRUPTED": "KILLED", "STALE": "KILLED"}
# A run is RUNNING only while it is written (milliseconds). One whose writer process is gone
# (this host: its pid; another host: this long after it started) was cut short: written again.
ABANDONED_AFTER_S = 3600


def cell_label(cell) -> str:
    """digits/module/adam: the dataset, the model unless logistic, the implementation and the
    optimizer, the device unless cpu, 'compiled' for compiled cells (the study's parent run)."""
    dataset, impl, optimizer, device, model, compiled = Cell(*cell)
    parts = [dataset, *([model] if model != "logistic" else []), impl, optimizer]
    return "/".join(parts + ([device] if device != "cpu" else []) + (["compiled"] if compiled else []))


def run_name(cell, number: int | str) -> str:
    """digits/module/adam/7: the cell's label and the trial's number (or repeat-r)."""
    return f"{cell_label(cell)}/{number}"


class CellRuns:
    """One study's runs in MLflow; a tune.trial.TrialObserver."""

    def __init__(self, tracker, experiment_id: str, exp: Experiment, cell, optimum: bool = True):
        self.tracker, self.experiment_id, self.exp, self.cell = tracker, experiment_id, exp, Cell(*cell)
        self.with_optimum = optimum
        """False (sweep --no-optimum): the repeats log no F* either."""
        self.study_name, self.cell_label = exp.study_name(cell), cell_label(cell)
        self.parent: str | None = None
        self.mine: dict[int, Any] = {}  # trial number -> the Future of the run this process wrote
        self.best: tuple | None = None  # after finalize: (objective value, model file, Result)

    # -- the study's parent run: RUNNING while the study runs
    def open_parent(self) -> str:
        """Find the study's parent run (resume) or create it. Two processes opening a new study
        together may both create one: each keeps the oldest and deletes its own otherwise."""
        found = self._parents()
        if found:
            self.parent = found[0].info.run_id
            self.tracker.resume_run(self.parent)
            return self.parent
        tags = {**environment_tags(self.cell.device), **self.tags("study")}
        config = TrainConfig(
            dataset=self.cell.dataset, model=self.cell.model, seed=self.exp.seed, dtype=self.exp.dtype
        )
        inputs = dataset_inputs(load_split(config))  # the trials' split (their other fields are the defaults)
        mine = self.tracker.start_run(
            self.experiment_id, cell_label(self.cell), tags, self._parent_params(), inputs
        )
        self.parent = self._parents()[0].info.run_id
        if self.parent != mine:
            self.tracker.delete_run(mine)
        return self.parent

    def finished(self) -> bool:
        """Whether the study's parent run exists and was ended by a finalize (FINISHED)."""
        return any(r.info.status == "FINISHED" for r in self._parents())

    def _parents(self) -> list:
        return self.tracker.find_runs(self.experiment_id, self.tags("study"))

    def tags(self, kind: str) -> dict[str, str]:
        return {"logreg.study": self.study_name, "logreg.run_kind": kind, "logreg.experiment": self.exp.name}

    def _parent_params(self) -> dict[str, Any]:
        exp, cell = self.exp, self.cell
        return {
            "cell": cell_label(cell),
            "dataset": cell.dataset, "model": cell.model, "impl": cell.impl, "optimizer": cell.optimizer,
            "device": cell.device, "compile": cell.compile, "n_trials": exp.trials_per_cell(cell.optimizer),
            "objective": exp.objective, "epochs": exp.epochs, "seed": exp.seed,
            "sampler": exp.sampler["name"], "pruner": exp.pruner["name"],
        }  # fmt: skip

    # -- one run per trial
    def trial_ended(self, outcome: TrialOutcome) -> None:
        self.mine[outcome.number] = self.tracker.write(self.trial_record(outcome))

    def trial_record(self, outcome: TrialOutcome) -> RunRecord:
        """The run of a trial: params, per-epoch history, final metrics, F*, how it ended."""
        tags = {
            **environment_tags(self.cell.device),
            **(dataset_tags(outcome.split) if outcome.split is not None else {}),
            **self.tags("trial"),
            "logreg.trial_number": str(outcome.number),
            "logreg.trial_state": outcome.state,
            **({"logreg.error": outcome.error[:1000]} if outcome.error else {}),
            **_optimum_tags(outcome.optimum, outcome.optimum_error),
        }
        history = dict(outcome.history)
        steps = history.pop("epoch", [])
        metrics = {**outcome.metrics, **({"optimum_value": outcome.optimum.value} if outcome.optimum else {})}
        return RunRecord(
            self.experiment_id,
            run_name(self.cell, outcome.number),
            RUN_STATUS[outcome.state],
            tags,
            outcome.params,
            metrics,
            history,
            steps,
            parent_run_id=self.parent,
            inputs=dataset_inputs(outcome.split) if outcome.split is not None else (),
        )

    # -- MLflow made to agree with Optuna
    def reconcile(self, study) -> int:
        """Every finished trial gets exactly one run with its status; return how many runs were
        written or deleted. A run still in another live process's writer is left to it."""
        self.tracker.drain()  # this process's own writes are in (or it raised)
        finished = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        if set(finished) <= set(self.mine):
            return 0  # every finished trial's run was written here: nothing to read back
        if self.parent is None:
            self.parent = next((r.info.run_id for r in self._parents()), None)
        runs, changed, written = self._trial_runs(), 0, {}
        for number, trial in finished.items():
            mine = runs.get(number, [])
            cut_short = [
                r for r in mine if r.info.status == "RUNNING" and _abandoned(r.data.tags, r.info.start_time)
            ]
            kept = [r for r in mine if r not in cut_short and r.info.status != "RUNNING"]
            for run in cut_short + kept[1:]:  # every process keeps the same one: they cannot delete both
                self.tracker.delete_run(run.info.run_id)
                changed += 1
            if len(cut_short) == len(mine) and _unwritten(trial):
                written[number] = self.tracker.write(self.rebuilt_record(trial))
        for number, future in written.items():
            run_id = future.result()
            changed += 1
            if self._trial_runs().get(number, [])[0].info.run_id != run_id:  # another was first
                self.tracker.delete_run(run_id)
        return changed

    def _trial_runs(self) -> dict[int, list]:
        """Runs by trial number, the one to keep first: written by its trial's process, then oldest."""
        out: dict[int, list] = {}
        for run in self.tracker.find_runs(self.experiment_id, self.tags("trial")):
            out.setdefault(int(run.data.tags.get("logreg.trial_number", -1)), []).append(run)
        for found in out.values():
            found.sort(key=lambda r: ("logreg.rebuilt" in r.data.tags, r.info.start_time or 0, r.info.run_id))
        return out

    def rebuilt_record(self, trial) -> RunRecord:
        """A trial's run from what Optuna kept: its config, final metrics and error."""
        reason = str(trial.user_attrs.get("fail_reason", ""))
        state = trial.state.name
        if state == "FAIL":
            state = "DIVERGED" if st.diverged(trial) else "INTERRUPTED" if "Interrupt" in reason else "FAIL"
            if not reason:
                state, reason = "STALE", "its process died mid-trial (Optuna failed it as stale)"
        params = dict(trial.user_attrs.get("config", {}))
        steps = sorted(trial.intermediate_values)
        history = {self.exp.objective: [trial.intermediate_values[s] for s in steps]} if steps else {}
        tags = {
            **self.tags("trial"),
            "logreg.trial_number": str(trial.number),
            "logreg.trial_state": state,
            "logreg.rebuilt": "written from the Optuna trial: its process stopped before writing the run",
            **({"logreg.error": reason[:1000]} if reason else {}),
        }
        metrics = dict(trial.user_attrs.get("result", {}))
        name = run_name(self.cell, trial.number)
        return RunRecord(self.experiment_id, name, RUN_STATUS[state], tags, params, metrics, history, steps,
                         parent_run_id=self.parent)  # fmt: skip

    # -- the end of the study: best trial, model, plots, repeats
    def finalize(self, study, plots: bool, workdir: Path) -> None:
        """The study's end (after reconcile): its best trial's metrics, model and plots, repeats."""
        best = st.best_trial(study)
        out = workdir / self.study_name.replace("/", "__")
        out.mkdir(parents=True, exist_ok=True)
        result = train(TrainConfig(**best.user_attrs["config"])) if best is not None else None
        artifacts = []
        if result is not None:  # deterministic: retraining the best config reproduces its run
            artifacts.append((save_model(result, out / "best_model.pt"), "model"))
            self.best = (best.value, out / "best_model.pt", result)
        if plots:
            title, label = self.study_name, f"{self.study_name}, trial {best.number if best else '-'}"
            rows, importances = st.study_frame(study), st.param_importances(study)
            files = figures.study_figures(
                rows, importances, self.exp.direction, self.exp.objective, title, out
            )
            files += figures.best_trial_figures(result, label, out) if result is not None else []
            artifacts += [(path, "plots") for path in files]
        if best is not None and self.exp.repeats > 1:
            self.log_repeats(TrainConfig(**best.user_attrs["config"]))
        self.tracker.drain()
        metrics, tags = _best_summary(study, best, self.cell)
        self.tracker.end_run(self.parent, "FINISHED", metrics, tags, artifacts)

    def log_repeats(self, config: TrainConfig) -> None:
        """The best configuration with seeds seed, seed + 1, ...: one run each (kind 'repeat'), each
        with the suboptimality against its own split's F*. Runs already logged are not repeated."""
        done = {
            r.data.tags.get("logreg.repeat")
            for r in self.tracker.find_runs(self.experiment_id, self.tags("repeat"))
        }
        for r in range(self.exp.repeats):
            if str(r) in done:
                continue
            cfg = config.replace(seed=config.seed + r)
            split = load_split(cfg)
            opt = optimum_for(cfg, split) if self.with_optimum else None
            result = train(cfg, split=split, optimum=opt)
            state = "DIVERGED" if result.diverged else "COMPLETE"
            metrics = {**result.metrics, **result.timings}
            outcome = TrialOutcome(
                0,
                state,
                params=cfg.to_params(),
                metrics=metrics,
                history=result.history,
                optimum=opt,
                split=split,
            )
            record = self.trial_record(outcome)
            name = run_name(self.cell, f"repeat-{r}")
            tags = {**record.tags, **self.tags("repeat"), "logreg.repeat": str(r)}
            del tags["logreg.trial_number"]
            self.tracker.write(dataclasses.replace(record, name=name, tags=tags))


def _best_summary(study, best, cell) -> tuple[dict[str, float], dict[str, str]]:
    """The parent run's final metrics (trial counts, the best trial's) and tags."""
    rows = st.study_frame(study)
    metrics = {
        f"n_{s.lower()}": float(sum(r["state"] == s for r in rows)) for s in ("COMPLETE", "PRUNED", "FAIL")
    }
    tags: dict[str, str] = {}
    if best is not None:
        metrics["best_value"] = best.value
        metrics.update({f"best_{k}": v for k, v in best.user_attrs.get("result", {}).items()})
        tags = {"best_trial_number": str(best.number), "best_run_name": run_name(cell, best.number)}
        tags.update({f"best.{k}": str(v) for k, v in best.params.items()})
    return metrics, tags


def _optimum_tags(opt, error: str = "") -> dict[str, str]:
    """How F* was found (or why there is none)."""
    tags = (
        {}
        if opt is None
        else {"logreg.optimum_solver": opt.solver, "logreg.optimum_tolerance": f"{opt.tolerance:g}"}
    )
    message = error or (opt.message if opt is not None else "")
    return {**tags, **({"logreg.optimum_message": message} if message else {})}


def _abandoned(tags, start_ms, key: str = "logreg.writer") -> bool:
    """Whether the process that `tags[key]` (HOST:PID) names is gone: on this host, its pid has
    ended; on another, it started more than ABANDONED_AFTER_S ago (a write takes milliseconds)."""
    host, _, pid = str(tags.get(key, "")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return int(pid) == os.getpid()  # this process: its writes are drained
    return time.time() - (start_ms or 0) / 1000 > ABANDONED_AFTER_S


def _unwritten(trial) -> bool:
    """Whether a finished trial's run will not come from its own process: Optuna failed it as stale
    (its process died mid-trial), or that process is gone (or is this one, drained)."""
    if (
        trial.state.name == "FAIL"
        and "fail_reason" not in trial.user_attrs
        and "result" not in trial.user_attrs
    ):
        return True
    done = trial.datetime_complete.timestamp() * 1000 if trial.datetime_complete else 0
    return _abandoned(trial.user_attrs, done, "worker")
