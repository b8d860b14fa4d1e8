"""A sweep: one Optuna study per cell, every trial tracked in MLflow; progress and summary."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logreg import study as st
from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.errors import LogregError
from logreg.experiment import Experiment

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


@dataclass
class SweepOptions:
    """How to run a sweep (the experiment says what to run)."""

    storage: str | None = None
    """Optuna storage URL, or a journal file path (default optuna-journal.log)."""
    tracking_uri: str | None = None
    """MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."""
    track: bool = True
    progress: bool = True
    plots: bool = True
    results_dir: Path | None = Path("results")
    workers: int = 1
    finalize: bool = True
    """End each study's parent run with its best trial and plots (off in spawned workers)."""
    worker_args: list[str] = field(default_factory=list)
    """Command-line overrides handed on to spawned workers."""
    torch_threads: int = 1
    """torch.set_num_threads for this process's trials; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        if not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise LogregError(
                f"The 'torch_threads' parameter must be an int >= 0. Got {self.torch_threads!r} instead."
            )


def run_name(cell, number: int) -> str:
    dataset, impl, optimizer, device = cell
    dev = "" if device == "cpu" else f"__{device}"
    return f"{dataset}__{impl}__{optimizer}{dev}__trial-{number}"


class _SigtermAsInterrupt:
    """SIGTERM ends a sweep as Ctrl-C does: trials marked, runs ended, then exit."""

    def __enter__(self):
        self._old = None
        with contextlib.suppress(ValueError):  # not the main thread
            self._old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


class _CellTracking:
    """MLflow side of one study: its parent run and one child run per trial."""

    def __init__(self, tracker, experiment_id: str, exp: Experiment, cell):
        self.tracker, self.experiment_id, self.exp, self.cell = tracker, experiment_id, exp, cell
        self.study_name = exp.study_name(cell)
        self.parent = None

    def end_stale(self, study) -> int:
        """End as KILLED the trial runs a dead process left RUNNING; return how many.

        A RUNNING trial run is stale when its Optuna trial failed by heartbeat (its
        process died: RDB storages), or finished more than STALE_AFTER_S ago. A run
        whose trial another process is running, or has just finished, is left alone.
        """
        from logreg.tracking import end_stale_runs, find_runs

        if self.tracker is None:
            return 0
        st.fail_stale_trials(study)  # RDB: a dead worker's trial fails now and is queued for a retry
        now = time.time()
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}

        def stale(number: int) -> bool:
            t = trials.get(number)
            if t is None:
                return True
            if t.state.name in ("RUNNING", "WAITING"):
                return False
            if t.state.name == "FAIL" and "fail_reason" not in t.user_attrs:
                return True  # failed by Optuna's heartbeat check: the process died
            return t.datetime_complete is None or now - t.datetime_complete.timestamp() > STALE_AFTER_S

        runs = find_runs(
            self.tracker,
            self.experiment_id,
            {"logreg.study": self.study_name, "logreg.run_kind": "trial"},
            status="RUNNING",
            flush=False,
        )
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
            end_stale_runs(
                self.tracker,
                ended,
                "FINISHED",
                state=state,
                reason="its run was ended later: the process stopped before writing its end",
                metrics={r.info.run_id: done[r.info.run_id].user_attrs.get("result", {}) for r in ended},
            )
        return end_stale_runs(
            self.tracker,
            [r for r in runs if r.info.run_id not in done],
            "KILLED",
            "its process died mid-trial",
        ) + len(done)

    def _parents(self) -> list:
        from logreg.tracking import find_runs

        found = find_runs(
            self.tracker,
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
        from logreg.tracking import environment_tags

        if self.tracker is None:
            return
        self.end_stale(study)
        found = self._parents()
        if found:
            self.parent = self.tracker.resume_run(found[0].info.run_id)
            return
        dataset, impl, optimizer, device = self.cell
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
                "impl": impl,
                "optimizer": optimizer,
                "device": device,
                "n_trials": self.exp.n_trials,
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
            mine = self.parent.run_id
            self.tracker.end_run(self.parent, "KILLED")
            self.tracker.flush()
            self.tracker.client.delete_run(mine)
            self.parent = self.tracker.resume_run(oldest)

    # -- trial hooks (called by study.run_cell)
    def start(self, trial, config: TrainConfig):
        from logreg.tracking import dataset_tags, environment_tags

        if self.tracker is None:
            return None
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
            for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                hist[key] = [m[key] for _, m in history]
        steps = hist["epoch"]
        series = {k: v for k, v in hist.items() if k != "epoch"}
        self.tracker.log(handle, params=params, metrics=metrics, tags=tags, history=series, steps=steps)
        self.tracker.end_run(handle, TRIAL_STATUS[state])

    # -- the study's parent run
    def finalize(self, study, plots: bool, workdir: Path) -> None:
        from logreg import plots as pl

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
            from logreg.model_io import save_model
            from logreg.train import train

            # Deterministic: retraining the best config reproduces its run exactly.
            result = train(TrainConfig(**best.user_attrs["config"]))
            self.tracker.log_artifact(self.parent, save_model(result, out / "best_model.pt"), "model")
        if plots:
            title = self.study_name
            files = [
                pl.optimization_history(
                    rows,
                    self.exp.direction,
                    f"{title}: {self.exp.objective}",
                    out / "optimization_history.png",
                ),
                pl.param_importances(st.param_importances(study), title, out / "param_importances.png"),
            ]
            if result is not None:
                files.append(
                    pl.learning_curves(
                        result.history, f"{title}, trial {best.number}", out / "best_learning_curves.png"
                    )
                )
                if result.split.n_features == 2 and result.split.n_classes == 2:
                    files.append(
                        pl.decision_boundary(
                            result, f"{title}, trial {best.number}", out / "best_decision_boundary.png"
                        )
                    )
            for f in files:
                self.tracker.log_artifact(self.parent, f, "plots")
        self.tracker.end_run(self.parent, "FINISHED")


class _Progress:
    """tqdm bar: trials done, cells done, best value of the current cell."""

    def __init__(self, enabled: bool, total: int, n_cells: int):
        self.bar = None
        self.cells_done, self.n_cells = 0, n_cells
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def cell(self, name: str, best) -> None:
        if self.bar is not None:
            best_s = "-" if best is None else f"{best:.4g}"
            self.bar.set_postfix_str(f"cells {self.cells_done}/{self.n_cells} | {name} | best {best_s}")

    def trial(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _open_tracker(exp: Experiment, opts: SweepOptions):
    if not opts.track:
        return None, None
    from logreg.tracking import Tracker

    tracker = Tracker(opts.tracking_uri)
    return tracker, tracker.experiment_id(exp.name)


def run_cells(
    exp: Experiment,
    opts: SweepOptions,
    storage,
    tracker,
    experiment_id,
    progress: _Progress | None = None,
    workdir: Path | None = None,
) -> None:
    """Run every cell's study to n_trials finished trials (this process only)."""
    if opts.torch_threads and any(impl != "numpy" for impl in exp.impls):
        import torch

        # Sweep trials are small: one thread avoids torch's threads waiting for a core that the
        # MLflow writer or another worker holds (parallelism comes from --workers instead).
        torch.set_num_threads(opts.torch_threads)
    for cell in exp.cells():
        study = st.open_study(exp, cell, storage)
        name = exp.study_name(cell)
        ct = _CellTracking(tracker, experiment_id, exp, cell)
        if st.count_finished(study) >= exp.n_trials:
            ct.end_stale(study)  # a dead worker's run, left RUNNING after the others finished the cell
            if progress:
                progress.cells_done += 1
            continue
        ct.open_parent(study)
        best = [None]
        sign = 1 if exp.direction == "minimize" else -1

        def done(outcome, _best=best, _name=name, sign=sign):
            if (
                outcome.state == "COMPLETE"
                and outcome.value is not None
                and (_best[0] is None or sign * outcome.value < sign * _best[0])
            ):
                _best[0] = outcome.value
            if progress:
                progress.trial()
                progress.cell(_name, _best[0])

        hooks = {"start": ct.start, "finish": ct.finish, "done": done}
        if progress:
            progress.cell(name, None)
        # A failed MLflow write stops the sweep before the next trial (one clear error,
        # exit 2) rather than running on untracked; completed trials are kept.
        st.run_cell(exp, cell, study, hooks, stop=_tracking_failed(tracker))
        if progress:
            progress.cells_done += 1
            progress.cell(name, best[0])
        if opts.finalize:
            ct.finalize(study, opts.plots, workdir or Path(tempfile.mkdtemp()))


def _tracking_failed(tracker):
    def stop() -> bool:
        if tracker is not None:
            tracker.check()  # raises LogregError once a write has failed
        return False

    return stop


def _spawn_workers(
    exp: Experiment,
    opts: SweepOptions,
    storage_url: str,
    tracking_uri: str | None,
    progress: _Progress,
    storage,
) -> None:
    """N worker processes share every study; this process shows progress until they finish."""
    cmd = [
        sys.executable,
        "-m",
        "logreg",
        "worker",
        exp.path,
        "--storage",
        storage_url,
        "--no-finalize",
        *opts.worker_args,
    ]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if not opts.track:
        cmd.append("--no-track")
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(opts.workers)]
    studies = [st.open_study(exp, c, storage) for c in exp.cells()]
    seen = sum(min(st.count_finished(s), exp.n_trials) for s in studies)
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            now = sum(min(st.count_finished(s), exp.n_trials) for s in studies)
            progress.cells_done = sum(st.count_finished(s) >= exp.n_trials for s in studies)
            progress.trial(now - seen)
            progress.cell(f"{opts.workers} workers", None)
            seen = now
    except BaseException:  # Ctrl-C, SIGTERM, or the storage lost: stop the workers too
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise LogregError(
            f"{len(bad)} of {len(procs)} workers failed (exit status {bad}). "
            "Their completed trials are kept; see their errors above and re-run to resume."
        )


def run_sweep(exp: Experiment, opts: SweepOptions):
    """Run (or resume) the sweep; return the summary DataFrame (also written under results/)."""
    from logreg.tracking import resolve_tracking_uri

    storage_url = opts.storage or st.DEFAULT_STORAGE
    storage = st.open_storage(storage_url)  # creates the schema once, before any worker
    tracker, experiment_id = _open_tracker(exp, opts)
    workdir = Path(tempfile.mkdtemp(prefix="logreg-plots-"))
    cells = exp.cells()
    total = sum(max(0, exp.n_trials - st.count_finished(st.open_study(exp, c, storage))) for c in cells)
    progress = _Progress(opts.progress, total, len(cells))
    interrupted = False
    try:
        with _SigtermAsInterrupt():
            if opts.workers > 1:
                if "://" not in storage_url:
                    storage_url = str(Path(storage_url).resolve())
                uri = resolve_tracking_uri(opts.tracking_uri) if opts.track else None
                # Parent runs first, so workers starting together find them instead of each
                # creating its own.
                cts = [_CellTracking(tracker, experiment_id, exp, cell) for cell in cells]
                if tracker is not None:
                    for ct in cts:
                        ct.open_parent(st.open_study(exp, ct.cell, storage))
                    tracker.flush()
                _spawn_workers(exp, opts, storage_url, uri, progress, storage)
                if opts.finalize and tracker is not None:
                    for ct in cts:
                        study = st.open_study(exp, ct.cell, storage)
                        ct.end_stale(study)  # runs of workers that died
                        ct.finalize(study, opts.plots, workdir)
            else:
                run_cells(exp, opts, storage, tracker, experiment_id, progress, workdir)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        progress.close()
        if tracker is not None:
            try:
                tracker.close("KILLED" if interrupted else "FINISHED")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(exp, storage)
    if opts.results_dir is not None:
        write_summary(summary, Path(opts.results_dir) / exp.name)
    return summary


# ------------------------------------------------------------------- summary


def sklearn_reference(dataset: str, exp: Experiment) -> float:
    """scikit-learn LogisticRegression (lbfgs, default C=1) test accuracy on the same split."""
    from sklearn.linear_model import LogisticRegression

    split = load_split(TrainConfig(dataset=dataset, seed=exp.seed, dtype=exp.dtype))
    model = LogisticRegression(max_iter=5000).fit(split.X_train, split.y_train)
    return float(model.score(split.X_test, split.y_test))


def _hyperparams(params: dict[str, Any]) -> str:
    out = []
    for k, v in params.items():
        out.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(out)


def summarize(exp: Experiment, storage):
    """Per cell: best trial's test accuracy, hyperparameters, fit time; sklearn beside it."""
    import pandas as pd

    refs: dict[str, float] = {}
    rows = []
    for cell in exp.cells():
        dataset, impl, optimizer, device = cell
        study = st.open_study(exp, cell, storage)
        best = st.best_trial(study)
        if dataset not in refs:
            refs[dataset] = sklearn_reference(dataset, exp)
        res = best.user_attrs.get("result", {}) if best else {}
        rows.append(
            {
                "dataset": dataset,
                "impl": impl,
                "optimizer": optimizer,
                "device": device,
                "trials": st.count_finished(study),
                f"best_{exp.objective}": best.value if best else float("nan"),
                "test_accuracy": res.get("test_accuracy", float("nan")),
                "sklearn_test_accuracy": refs[dataset],
                "fit_seconds": res.get("fit_seconds", float("nan")),
                "best_trial": best.number if best else -1,
                "hyperparameters": _hyperparams(best.params) if best else "",
            }
        )
    return pd.DataFrame(rows)


def write_summary(df, out_dir: Path) -> tuple[Path, Path]:
    """summary.csv and summary.md, written whole to a temporary file then renamed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / "summary.csv", out_dir / "summary.md"
    for path, text in ((csv, df.to_csv(index=False)), (md, to_markdown(df))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return csv, md


def to_markdown(df) -> str:
    """The summary as a GitHub table: floats to 4 decimals (small ones in e-notation)."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        return str(v)

    from logreg.tables import markdown_table

    return markdown_table(list(df.columns), ([fmt(v) for v in row] for row in df.itertuples(index=False)))
