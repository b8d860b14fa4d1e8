"""The MLflow side of one study: its parent run, one child run per trial, stale-run repair."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.model import save_model
from logreg.optimum import Optimum, cached_optimum, optimum_for
from logreg.report import plots as figures
from logreg.tracking import dataset_tags, environment_tags
from logreg.train import suboptimality, train
from logreg.tune import study as st
from logreg.tune.experiment import Cell, Experiment
from logreg.tune.solver import solve_inline
from logreg.tune.storage import storage_errors

# A trial run still RUNNING in MLflow this long after its Optuna trial finished was left by a
# process that died between the two writes (a live writer catches up within seconds).
STALE_AFTER_S = 10.0
TRIAL_STATUS = {
    "COMPLETE": "FINISHED",
    "PRUNED": "FINISHED",
    "DIVERGED": "FAILED",
    "FAIL": "FAILED",
    "INTERRUPTED": "KILLED",
}


def run_name(cell, number: int) -> str:
    """iris__numpy__adam__trial-7; the model after the dataset unless logistic, the device unless
    cpu, '__compiled' for compiled cells."""
    dataset, impl, optimizer, device, model, compiled = Cell(*cell)
    dev = "" if device == "cpu" else f"__{device}"
    mod = "" if model == "logistic" else f"__{model}"
    comp = "__compiled" if compiled else ""
    return f"{dataset}{mod}__{impl}__{optimizer}{dev}{comp}__trial-{number}"


class CellTracking:
    """MLflow side of one study: its parent run and one child run per trial."""

    def __init__(self, tracker, experiment_id: str, exp: Experiment, cell, solver=None, optimum: bool = True):
        self.tracker, self.experiment_id, self.exp, self.cell = tracker, experiment_id, exp, cell
        self.with_optimum = optimum
        """False (sweep --no-optimum): no F*, no train_objective, no suboptimality."""
        self.study_name = exp.study_name(cell)
        self.parent = None
        self.last_optimum = None
        self.solver = solver
        """A tune.solver.BackgroundOptimum: F* solved while the trials train (else inline)."""
        self._pending = None  # (config, split) of the running trial, whose F* is not cached
        self._optimum_error = ""  # why the running trial's F* could not be solved in this process
        self._deferred: list[tuple] = []  # (run, history, F(w_0), pending F*) of ended trials

    def end_stale(self, study) -> int:
        """End as KILLED the trial runs a dead process left RUNNING; return how many.

        A RUNNING trial run is stale when its Optuna trial failed by heartbeat (its
        process died: RDB storages), or finished more than STALE_AFTER_S ago. A run
        whose trial another process is running, or has just finished, is left alone.
        """
        if self.tracker is None:
            return 0
        st.fail_stale_trials(study)  # RDB: a dead worker's trial fails now and is queued for a retry
        # The runs first, then the trials: a trial exists before its run, so every run read here
        # has its trial in the list read after it. (Read the other way round, a trial another
        # worker started between the two reads looked lost, and its run was ended KILLED.)
        runs = self.tracker.find_runs(
            self.experiment_id,
            {"logreg.study": self.study_name, "logreg.run_kind": "trial"},
            status="RUNNING",
            flush=False,
        )
        with storage_errors(st.storage_of(study)):
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        now = time.time()

        def stale(number: int) -> bool:
            t = trials.get(number)
            if t is None:
                return True
            if t.state.name in ("RUNNING", "WAITING"):
                return False
            if t.state.name == "FAIL" and "fail_reason" not in t.user_attrs:
                return True  # failed by Optuna's heartbeat check: the process died
            return t.datetime_complete is None or now - t.datetime_complete.timestamp() > STALE_AFTER_S

        runs = [r for r in runs if stale(int(r.data.tags.get("logreg.trial_number", -1)))]
        # A trial that finished in Optuna but whose run was never ended (the tracking store went
        # away) ends FINISHED with the result Optuna kept; the others died mid-trial.
        done = {
            r.info.run_id: trials[int(r.data.tags["logreg.trial_number"])]
            for r in runs
            if trials.get(int(r.data.tags["logreg.trial_number"])) is not None
            and trials[int(r.data.tags["logreg.trial_number"])].state.name in ("COMPLETE", "PRUNED")
        }
        for state in ("COMPLETE", "PRUNED"):
            ended = [r for r in runs if r.info.run_id in done and done[r.info.run_id].state.name == state]
            self.tracker.end_stale_runs(
                ended,
                "FINISHED",
                state=state,
                reason="its run was ended later: the process stopped before writing its end",
                metrics={r.info.run_id: done[r.info.run_id].user_attrs.get("result", {}) for r in ended},
            )
        return self.tracker.end_stale_runs(
            [r for r in runs if r.info.run_id not in done],
            "KILLED",
            "its process died mid-trial",
        ) + len(done)

    def _parents(self) -> list:
        found = self.tracker.find_runs(
            self.experiment_id,
            {"logreg.study": self.study_name, "logreg.run_kind": "study"},
            flush=False,
        )
        # The oldest is the study's parent, whichever process asks (see open_parent).
        return sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def open_parent(self, study) -> None:
        """Find the study's parent run (resume) or create it; end runs a dead process left RUNNING.

        Two processes that open a new study at the same moment may both create a
        parent: each then keeps the oldest and deletes its own if it is not that one.
        (`sweep --workers` creates the parents before its workers start.)
        """
        if self.tracker is None:
            return
        self.end_stale(study)
        found = self._parents()
        if found:
            self.parent = self.tracker.resume_run(found[0].info.run_id)
            return
        dataset, impl, optimizer, device, model, compiled = Cell(*self.cell)
        tags = {
            **environment_tags(device),
            "logreg.study": self.study_name,
            "logreg.run_kind": "study",
            "logreg.experiment": self.exp.name,
        }
        self.parent = self.tracker.start_run(self.experiment_id, self.study_name, tags)
        self.tracker.log(
            self.parent,
            params={
                "dataset": dataset,
                "model": model,
                "impl": impl,
                "optimizer": optimizer,
                "device": device,
                "compile": compiled,
                "n_trials": self.exp.trials_per_cell(optimizer),
                "objective": self.exp.objective,
                "epochs": self.exp.epochs,
                "seed": self.exp.seed,
                "sampler": self.exp.sampler["name"],
                "pruner": self.exp.pruner["name"],
            },
        )
        self.tracker.flush()
        oldest = self._parents()[0].info.run_id
        if oldest != self.parent.run_id:  # another process created the parent first: use it
            self.tracker.discard_run(self.parent)
            self.parent = self.tracker.resume_run(oldest)

    # -- trial hooks (called by study.run_cell)
    def optimum(self, config: TrainConfig):
        """F* of the trial's objective, to log suboptimality against (tracked sweeps only).

        Cached per (dataset digest, model, weight decay) in this process: computed once per
        dataset and weight decay, warm-started from the nearest one already solved. With a
        solver, an F* not cached yet is solved once the trial completes (pruned and failed
        trials need none): here, after the last epoch, when it is small (tune.solver.solve_inline),
        else in the helper process while the next trial trains.
        """
        self.last_optimum, self._pending, self._optimum_error = None, None, ""
        if self.tracker is None or not self.with_optimum:
            return None
        split = load_split(config)
        if self.solver is None:
            self.last_optimum = optimum_for(config, split)
            return self.last_optimum
        if config.model == "mlp":
            return None  # not convex: no F*
        found, value = cached_optimum(config, split)
        if found:
            self.last_optimum = value
            return value
        if solve_inline(split):  # small: solved here if the trial completes, logged with its run

            def solve_here() -> Optimum | None:
                try:
                    self.last_optimum = optimum_for(config, split)
                except Exception as exc:  # noqa: BLE001 - a side metric: say why, never fail the trial
                    self._optimum_error = _unsolved(exc)
                return self.last_optimum

            return solve_here
        self._pending = (config, split)
        return lambda: None  # the trial records its objective; F* comes later

    def log_suboptimality(self, block: bool = False) -> None:
        """Log the suboptimality of ended trials whose F* has come in (block: wait for all)."""
        keep, deferred = [], self._deferred
        self._deferred = []
        for handle, history, initial, pending in deferred:
            if not block and not pending.ready():
                keep.append((handle, history, initial, pending))
                continue
            try:
                opt = pending()
            except Exception as exc:  # noqa: BLE001 - a side metric: say why, never stop the sweep
                self.tracker.log(handle, tags={"logreg.optimum_message": _unsolved(exc)})
                continue
            series, timings = suboptimality(history, initial, opt)
            self.tracker.log(
                handle, metrics={**timings, **_optimum_metrics(opt)}, tags=_optimum_tags(opt),
                history=series, steps=history["epoch"],
            )  # fmt: skip
        self._deferred = keep

    def start(self, trial, config: TrainConfig):
        if self.tracker is None:
            return None
        self.log_suboptimality()  # what came in while the last trials trained
        split = load_split(config)
        tags = {
            **environment_tags(config.resolved_device),
            **dataset_tags(split),
            "logreg.study": self.study_name,
            "logreg.run_kind": "trial",
            "logreg.trial_number": str(trial.number),
            "logreg.trial_state": "RUNNING",
            "logreg.experiment": self.exp.name,
        }
        return self.tracker.start_run(
            self.experiment_id, run_name(self.cell, trial.number), tags, parent=self.parent
        )

    def finish(self, handle, trial, state: str, result, history, error) -> None:
        if handle is None:
            return
        params = dict(trial.user_attrs["config"])
        tags: dict[str, Any] = {"logreg.trial_state": state}
        if error:
            tags["logreg.error"] = str(error)[:1000]
        metrics: dict[str, float] = {}
        if result is not None:
            hist = result.history
            metrics = {**result.metrics, **{k: v for k, v in result.timings.items()}}
        else:
            hist = {"epoch": [e for e, _ in history]}
            for key in history[0][1] if history else ():
                hist[key] = [m[key] for _, m in history]
        metrics.update(_optimum_metrics(self.last_optimum))
        tags.update(_optimum_tags(self.last_optimum))
        if self._optimum_error:
            tags["logreg.optimum_message"] = self._optimum_error
        if self._pending is not None and state == "COMPLETE":
            keys = ("epoch", "train_seconds", "train_objective")
            history_now = {k: list(result.history[k]) for k in keys if k in result.history}
            found = self.solver.submit(*self._pending)
            if not hasattr(found, "ready"):  # solved meanwhile (a repeated weight decay)
                found = _Solved(found)
            self._deferred.append((handle, history_now, result.initial_objective, found))
        self._pending = None
        steps = hist["epoch"]
        series = {k: v for k, v in hist.items() if k != "epoch"}
        self.tracker.log(handle, params=params, metrics=metrics, tags=tags, history=series, steps=steps)
        self.tracker.end_run(handle, TRIAL_STATUS[state])

    def log_repeats(self, config: TrainConfig) -> None:
        """The best configuration with seeds seed, seed + 1, ...: one child run each (kind 'repeat').

        A new seed draws a new split, initial weights and batch order; each run's suboptimality is
        against the F* of its own split. Runs already logged (a resumed sweep) are not repeated.
        """
        done = {
            r.data.tags.get("logreg.repeat")
            for r in self.tracker.find_runs(
                self.experiment_id, {"logreg.study": self.study_name, "logreg.run_kind": "repeat"}
            )
        }
        for r in range(self.exp.repeats):
            if str(r) in done:
                continue
            cfg = config.replace(seed=config.seed + r)
            split = load_split(cfg)
            opt = optimum_for(cfg, split) if self.with_optimum else None
            result = train(cfg, split=split, optimum=opt)
            tags = {
                **environment_tags(cfg.resolved_device),
                **dataset_tags(split),
                "logreg.study": self.study_name,
                "logreg.run_kind": "repeat",
                "logreg.repeat": str(r),
                "logreg.experiment": self.exp.name,
                "logreg.trial_state": "COMPLETE" if not result.diverged else "DIVERGED",
            }
            name = f"{run_name(self.cell, 0).rsplit('__trial-', 1)[0]}__repeat-{r}"
            handle = self.tracker.start_run(self.experiment_id, name, tags, parent=self.parent)
            self.last_optimum = opt
            metrics = {**result.metrics, **result.timings, **_optimum_metrics(opt)}
            hist = result.history
            series = {k: v for k, v in hist.items() if k != "epoch"}
            self.tracker.log(
                handle, params=cfg.to_params(), metrics=metrics, tags=_optimum_tags(opt),
                history=series, steps=hist["epoch"],
            )  # fmt: skip
            self.tracker.end_run(handle, "FAILED" if result.diverged else "FINISHED")

    # -- the study's parent run
    def finalize(self, study, plots: bool, workdir: Path) -> None:
        if self.tracker is None or self.parent is None:
            return
        rows = st.study_frame(study)
        counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
        metrics = {f"n_{k.lower()}": float(v) for k, v in counts.items()}
        tags: dict[str, Any] = {}
        best = st.best_trial(study)
        if best is not None:
            metrics["best_value"] = best.value
            for k, v in best.user_attrs.get("result", {}).items():
                metrics[f"best_{k}"] = v
            tags["best_trial_number"] = str(best.number)
            tags["best_run_name"] = run_name(self.cell, best.number)
            for k, v in best.params.items():
                tags[f"best.{k}"] = str(v)
        self.tracker.log(self.parent, metrics=metrics, tags=tags)
        out = workdir / self.study_name.replace("/", "__")
        out.mkdir(parents=True, exist_ok=True)
        result = None
        if best is not None:
            # Deterministic: retraining the best config reproduces its run exactly.
            result = train(TrainConfig(**best.user_attrs["config"]))
            self.tracker.log_artifact(self.parent, save_model(result, out / "best_model.pt"), "model")
        if best is not None and self.exp.repeats > 1:
            self.log_repeats(TrainConfig(**best.user_attrs["config"]))
        if plots:
            title = self.study_name
            files = [
                figures.optimization_history(
                    rows,
                    self.exp.direction,
                    f"{title}: {self.exp.objective}",
                    out / "optimization_history.png",
                ),
                figures.param_importances(st.param_importances(study), title, out / "param_importances.png"),
            ]
            if result is not None:
                files.append(
                    figures.learning_curves(
                        result.history, f"{title}, trial {best.number}", out / "best_learning_curves.png"
                    )
                )
                if (
                    result.split.n_features == 2
                    and result.split.n_classes == 2
                    and result.model.hidden is None
                ):
                    files.append(
                        figures.decision_boundary(
                            result, f"{title}, trial {best.number}", out / "best_decision_boundary.png"
                        )
                    )
                if result.split.n_features == 1:
                    files.append(
                        figures.fitted_curve(
                            result, f"{title}, trial {best.number}", out / "best_fitted_curve.png"
                        )
                    )
            for f in files:
                self.tracker.log_artifact(self.parent, f, "plots")
        self.tracker.end_run(self.parent, "FINISHED")


def _optimum_metrics(opt) -> dict[str, float]:
    """F* (README: the logged schema); NaN: no finite optimum; nothing for mlp."""
    return {} if opt is None else {"optimum_value": opt.value}


def _unsolved(exc: Exception) -> str:
    """The logreg.optimum_message of an F* whose solve raised."""
    return f"F* could not be computed: {type(exc).__name__}: {exc}"[:1000]


def _optimum_tags(opt) -> dict[str, str]:
    """How F* was found (or why there is none)."""
    if opt is None:
        return {}
    return {
        "logreg.optimum_solver": opt.solver,
        "logreg.optimum_tolerance": f"{opt.tolerance:g}",
        **({"logreg.optimum_message": opt.message} if opt.message else {}),
    }


class _Solved:
    """An F* already known, with a pending one's interface."""

    def __init__(self, value) -> None:
        self.value = value

    def ready(self) -> bool:
        return True

    def __call__(self):
        return self.value
