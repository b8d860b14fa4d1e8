"""A sweep: every cell's study run to n_trials, here or in N worker processes; then the summary."""

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

from logreg.errors import LogregError
from logreg.paths import check_output_dir
from logreg.timing import TORCH_THREADS
from logreg.tracking import Tracker, check_tracking_uri, resolve_tracking_uri
from logreg.tune import study as st
from logreg.tune.cell import CellTracking
from logreg.tune.experiment import Experiment
from logreg.tune.progress import Progress
from logreg.tune.solver import BackgroundOptimum
from logreg.tune.storage import DEFAULT_STORAGE, open_storage
from logreg.tune.summary import summarize, write_summary
from logreg.validation import Interval, check_params


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
    optimum: bool = True
    """Solve F* per (dataset, model, weight decay) and log each tracked trial's suboptimality."""
    results_dir: Path | None = Path("results")
    workers: int = 1
    finalize: bool = True
    """End each study's parent run with its best trial and plots (off in spawned workers)."""
    worker_args: list[str] = field(default_factory=list)
    """Command-line overrides handed on to spawned workers."""
    torch_threads: int = 1
    """torch CPU threads of every trial (its config's torch_threads); 0 chooses from the dataset's
    size as `train` does. 1 by default: trials are small, and --workers gives the parallelism."""

    def __post_init__(self) -> None:
        check_params(
            {
                "workers": Interval(int, 1),
                "torch_threads": TORCH_THREADS,
            },
            vars(self),
        )
        if self.torch_threads == "auto":
            object.__setattr__(self, "torch_threads", 0)

    def overrides(self) -> dict:
        """TrainConfig fields every trial takes from these options (and logs as params)."""
        return {"torch_threads": self.torch_threads}


class SigtermAsInterrupt:
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


def _open_tracker(exp: Experiment, opts: SweepOptions):
    if not opts.track:
        return None, None
    tracker = Tracker(opts.tracking_uri)
    return tracker, tracker.experiment_id(exp.mlflow_experiment)


def run_cells(
    exp: Experiment,
    opts: SweepOptions,
    storage,
    tracker,
    experiment_id,
    progress: Progress | None = None,
    workdir: Path | None = None,
) -> None:
    """Run every cell's study to n_trials finished trials (this process only)."""
    solver = BackgroundOptimum() if tracker is not None and opts.optimum else None
    try:
        for cell in exp.cells():
            _run_one_cell(exp, opts, storage, tracker, experiment_id, progress, workdir, cell, solver)
    finally:
        if solver is not None:
            solver.close()


def _run_one_cell(exp, opts, storage, tracker, experiment_id, progress, workdir, cell, solver) -> None:
    """One cell's study to n_trials finished trials, then its parent run's summary."""
    study = st.open_study(exp, cell, storage)
    name = exp.study_name(cell)
    ct = CellTracking(tracker, experiment_id, exp, cell, solver, optimum=opts.optimum)
    if st.count_finished(study) >= exp.trials_per_cell(cell[2]):
        ct.end_stale(study)  # a dead worker's run, left RUNNING after the others finished the cell
        if not st.has_waiting(study):  # (else its trial, failed just now, waits for its retry)
            if progress:
                progress.cells_done += 1
            return
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

    hooks = {"start": ct.start, "finish": ct.finish, "done": done, "optimum": ct.optimum}
    if progress:
        progress.cell(name, None)
    # A failed MLflow write stops the sweep before the next trial (one clear error,
    # exit 2) rather than running on untracked; completed trials are kept.
    stop = _tracking_failed(tracker)
    while True:
        st.run_cell(exp, cell, study, hooks, stop=stop, overrides=opts.overrides())
        ct.log_suboptimality(block=True)  # F* of the last trials, solved while they trained
        # Trials failed while this cell ran (heartbeats; behind the proxy, LOGREG_PROXY_STALE_AFTER)
        # belonged to dead processes: their runs end KILLED now, not at the next sweep; a trial
        # failed only now has a retry queued (RDB heartbeats), which the next round runs.
        ct.end_stale(study)
        if not st.has_waiting(study):
            break
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
    progress: Progress,
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
        "--no-progress",  # this process shows the progress of all of them
        *opts.worker_args,
    ]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if not opts.track:
        cmd.append("--no-track")
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for _ in range(opts.workers)]
    cells = exp.cells()
    studies = [(st.open_study(exp, c, storage), exp.trials_per_cell(c[2])) for c in cells]
    seen = sum(min(st.count_finished(s), n) for s, n in studies)
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            now = sum(min(st.count_finished(s), n) for s, n in studies)
            progress.cells_done = sum(st.count_finished(s) >= n for s, n in studies)
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


def _progress(exp: Experiment, opts: SweepOptions, storage) -> Progress:
    """A bar over the trials still to run in every cell."""
    cells = exp.cells()
    total = sum(
        max(0, exp.trials_per_cell(c[2]) - st.count_finished(st.open_study(exp, c, storage))) for c in cells
    )
    return Progress(opts.progress, total, len(cells))


@contextlib.contextmanager
def _tracked(exp: Experiment, opts: SweepOptions, storage):
    """This process's tracker and progress bar. On the way out the bar closes and the runs still
    open end: KILLED after Ctrl-C or SIGTERM (which raise KeyboardInterrupt here), else FINISHED."""
    tracker, experiment_id = _open_tracker(exp, opts)
    progress = _progress(exp, opts, storage)
    interrupted = False
    try:
        with SigtermAsInterrupt():
            yield tracker, experiment_id, progress
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        progress.close()
        if tracker is not None:
            tracker.close("KILLED" if interrupted else "FINISHED")


def _run_with_workers(exp, opts, storage, storage_url, tracker, experiment_id, progress, workdir) -> None:
    """Parent runs first (so workers starting together find them), then N workers, then finalize."""
    if "://" not in storage_url:
        storage_url = str(Path(storage_url).resolve())
    uri = resolve_tracking_uri(opts.tracking_uri) if opts.track else None
    cts = [CellTracking(tracker, experiment_id, exp, cell) for cell in exp.cells()]
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


def run_sweep(exp: Experiment, opts: SweepOptions):
    """Run (or resume) the sweep; return the summary DataFrame (also written under results/)."""
    if opts.results_dir is not None:  # before any trial: a bad folder fails now, not at the end
        check_output_dir(Path(opts.results_dir) / exp.name, "--results-dir", create=False)
    if opts.track:  # a bad tracking URI fails before the Optuna storage is made
        check_tracking_uri(resolve_tracking_uri(opts.tracking_uri))
    storage_url = opts.storage or DEFAULT_STORAGE
    storage = open_storage(storage_url)  # creates the schema once, before any worker
    workdir = Path(tempfile.mkdtemp(prefix="logreg-plots-"))
    try:
        with _tracked(exp, opts, storage) as (tracker, experiment_id, progress):
            if opts.workers > 1:
                _run_with_workers(exp, opts, storage, storage_url, tracker, experiment_id, progress, workdir)
            else:
                run_cells(exp, opts, storage, tracker, experiment_id, progress, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(exp, storage)
    if opts.results_dir is not None:
        write_summary(summary, Path(opts.results_dir) / exp.name)
    return summary


def run_worker(exp: Experiment, opts: SweepOptions) -> None:
    """Join the experiment's studies from this process (`logreg worker`) until every cell is done.

    Ctrl-C or SIGTERM raises KeyboardInterrupt after the running trial is marked and its run ended.
    """
    storage = open_storage(opts.storage)
    with _tracked(exp, opts, storage) as (tracker, experiment_id, progress):
        run_cells(exp, opts, storage, tracker, experiment_id, progress)
