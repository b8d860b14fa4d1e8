"""A sweep: every cell's study run to n_trials, here or in N worker processes; then the summary.

Ctrl-C and SIGTERM (to this process or its whole process group, as schedulers send it) set a
flag: the trial in flight stops after its current epoch, its run is written KILLED, the study's
parent run ends KILLED, and the sweep exits 130 within seconds; the same command resumes. A
second signal, later than STOP_GRACE_S after the first, stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from logreg.experiment import Experiment
from logreg.paths import check_output_dir
from logreg.report.summary import write_summary
from logreg.timing import TORCH_THREADS
from logreg.tracking import MODES, Tracker, check_tracking_uri, resolve_tracking_uri
from logreg.tune import study as st
from logreg.tune.cell import CellRuns
from logreg.tune.champions import register_champions
from logreg.tune.progress import Progress
from logreg.tune.solver import OptimumSolver
from logreg.tune.storage import DEFAULT_STORAGE, open_storage
from logreg.tune.summary import summarize
from logreg.tune.trial import run_cell
from logreg.tune.workers import run_with_workers
from logreg.validation import Interval, Options, check_params

STOP_GRACE_S = 2.0  # a group signal and the sweep's own forward to its workers arrive together


@dataclass
class SweepOptions:
    """How to run a sweep (the experiment says what to run); serialisable for spawned workers."""

    storage: str | None = None
    """Optuna storage URL, or a journal file path (default runs/optuna-journal.log)."""
    tracking_uri: str | None = None
    """MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)."""
    track: bool = True
    progress: bool = True
    plots: bool = True
    optimum: bool = True
    """Solve F* per (dataset, model, weight decay) and log each tracked trial's suboptimality."""
    results_dir: str | None = "runs/results"
    workers: int = 1
    finalize: bool = True
    """End each study's parent run with its best trial and plots (off in spawned workers)."""
    torch_threads: int = 1
    """torch CPU threads of every trial; 0 chooses from the dataset's size as `train` does. 1 by
    default: trials are small, and --workers gives the parallelism."""
    writer: str = "process"
    """How trial runs are written: process (a helper process), thread or sync (tracking.runs)."""

    def __post_init__(self) -> None:
        if self.torch_threads == "auto":
            self.torch_threads = 0
        check_params(
            {"workers": Interval(int, 1), "torch_threads": TORCH_THREADS, "writer": Options(MODES)},
            vars(self),
        )
        if self.results_dir is not None:
            self.results_dir = str(self.results_dir)

    def overrides(self) -> dict:
        """TrainConfig fields every trial takes from these options (and logs as params)."""
        return {"torch_threads": self.torch_threads}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class StopFlag:
    """Ctrl-C and SIGTERM set the flag (the sweep stops after the current epoch); a second signal,
    STOP_GRACE_S or more after the first, raises KeyboardInterrupt at once. `flag()` asks it."""

    def __init__(self) -> None:
        self.event, self.first = threading.Event(), 0.0

    def __call__(self) -> bool:
        return self.event.is_set()

    def _signal(self, signum, frame) -> None:
        if self.event.is_set() and time.monotonic() - self.first > STOP_GRACE_S:
            raise KeyboardInterrupt(f"signal {signum}")
        if not self.event.is_set():
            self.first = time.monotonic()
        self.event.set()

    @contextlib.contextmanager
    def installed(self):
        old = {}
        with contextlib.suppress(ValueError):  # not the main thread: no signals here
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._signal)
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def run_cells(exp: Experiment, opts: SweepOptions, store, tracker, progress, stop, workdir: Path) -> list:
    """Run every cell's study to n_trials finished trials (this process only); its CellRuns."""
    solver = OptimumSolver() if tracker is not None and opts.optimum else None
    experiment_id = tracker.experiment_id(exp.mlflow_experiment) if tracker is not None else None
    cells = [CellRuns(tracker, experiment_id, exp, c, opts.optimum) if tracker else None for c in exp.cells()]
    try:
        for cell, runs in zip(exp.cells(), cells, strict=True):
            _run_one_cell(exp, opts, store, cell, runs, progress, solver, stop, workdir)
        return [runs for runs in cells if runs is not None]
    finally:
        if solver is not None:
            solver.close()


def _run_one_cell(exp, opts, store, cell, runs, progress, solver, stop, workdir) -> None:
    """One cell's study to n_trials finished trials, reconciled; its parent run ended (finalize)."""
    study = st.open_study(exp, cell, store)
    with store.errors():
        store.fail_stale(study)  # a dead worker's trial: failed now, its retry (RDB) queued
        done = st.count_finished(study) >= exp.trials_per_cell(cell[2]) and not st.has_waiting(study)
    if done:
        if runs is not None:
            runs.reconcile(study)  # runs a dead process did not write
            if opts.finalize and not runs.finished():  # its trials ran, its end did not (a sweep cut short)
                runs.open_parent()
                runs.finalize(study, opts.plots, workdir)
        progress.cell_done(exp.study_name(cell))
        return
    if runs is not None:
        runs.open_parent()
    progress.start_cell(exp.study_name(cell))
    try:
        run_cell(exp, cell, study, store, (runs, progress), solver=solver,
                 overrides=opts.overrides(), should_stop=stop)  # fmt: skip
    except BaseException:
        if runs is not None:
            with contextlib.suppress(Exception):  # the store may be what failed
                runs.tracker.drain()
                runs.tracker.end_run(runs.parent, "KILLED")
        raise
    progress.cell_done(exp.study_name(cell))
    if runs is not None:
        runs.reconcile(study)
        if opts.finalize:
            runs.finalize(study, opts.plots, workdir)


@contextlib.contextmanager
def _session(exp: Experiment, opts: SweepOptions, store):
    """This process's tracker, progress bar and stop flag; on the way out the writer is drained."""
    tracker = Tracker(opts.tracking_uri, opts.writer) if opts.track else None
    progress = Progress(opts.progress, _remaining(exp, store), len(exp.cells()), exp.direction == "minimize")
    stop = StopFlag()
    try:
        with stop.installed():
            yield tracker, progress, stop
    finally:
        progress.close()
        if tracker is not None:
            tracker.close()


def _remaining(exp: Experiment, store) -> int:
    with store.errors():
        studies = [(st.open_study(exp, c, store), exp.trials_per_cell(c[2])) for c in exp.cells()]
        return sum(max(0, n - st.count_finished(s)) for s, n in studies)


def run_sweep(exp: Experiment, opts: SweepOptions):
    """Run (or resume) the sweep; return the summary DataFrame (also written under results_dir)."""
    if opts.results_dir is not None:  # before any trial: a bad folder fails now, not at the end
        check_output_dir(Path(opts.results_dir) / exp.name, "--results-dir", create=False)
    if opts.track:  # a bad tracking URI fails before the Optuna storage is made
        check_tracking_uri(resolve_tracking_uri(opts.tracking_uri))
    store = open_storage(opts.storage or DEFAULT_STORAGE)  # its schema once, before any worker
    workdir = Path(tempfile.mkdtemp(prefix="logreg-plots-"))
    try:
        with _session(exp, opts, store) as (tracker, progress, stop):
            run = run_with_workers if opts.workers > 1 else run_cells
            finalized = run(exp, opts, store, tracker, progress, stop, workdir)
            champions = register_champions(exp, finalized, tracker) if tracker and opts.finalize else []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with store.errors():
        summary = summarize(exp, store)
    summary.attrs["champions"] = champions  # what the sweep prints after its headline
    if opts.results_dir is not None:
        write_summary(summary, Path(opts.results_dir) / exp.name)
    return summary


def run_worker(exp: Experiment, opts: SweepOptions) -> None:
    """Join the experiment's studies from this process (`logreg worker`) until every cell is done."""
    store = open_storage(opts.storage)
    workdir = Path(tempfile.mkdtemp(prefix="logreg-plots-"))
    try:
        with _session(exp, opts, store) as (tracker, progress, stop):
            run_cells(exp, opts, store, tracker, progress, stop, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
