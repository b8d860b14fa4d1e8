"""`sweep --workers N`: N worker processes share every study; this process opens the parent runs
first, shows the progress of all, forwards a stop, and finalizes every cell once they end.

A worker gets its job as one JSON file (`logreg worker --spec FILE`): the validated experiment and
the sweep's options, as this process holds them; nothing is rebuilt from command-line flags.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from logreg.errors import LogregError
from logreg.experiment import Experiment, as_dict, validate
from logreg.tracking import resolve_tracking_uri
from logreg.tune import study as st
from logreg.tune.cell import CellRuns
from logreg.tune.storage import DEFAULT_STORAGE

POLL_S = 0.5
STOP_WAIT_S = 60


def write_spec(exp: Experiment, opts, path: Path) -> Path:
    """The job of a spawned worker: the experiment and the options, absolute stores, no finalize."""
    storage = opts.storage or DEFAULT_STORAGE
    if "://" not in storage and storage != ":memory:":
        storage = str(Path(storage).resolve())
    options = {**opts.to_dict(), "storage": storage, "workers": 1, "finalize": False, "progress": False}
    if opts.track:
        options["tracking_uri"] = resolve_tracking_uri(opts.tracking_uri)
    path.write_text(json.dumps({"experiment": as_dict(exp), "path": exp.path, "options": options}))
    return path


def read_spec(path: str | Path) -> tuple[Experiment, dict]:
    """(Experiment, the SweepOptions fields) from a spec file written by write_spec."""
    spec = json.loads(Path(path).read_text())
    return validate(spec["experiment"], spec["path"]), spec["options"]


def run_with_workers(exp, opts, store, tracker, progress, stop, workdir: Path) -> list:
    runs = [CellRuns(tracker, tracker.experiment_id(exp.mlflow_experiment), exp, c, opts.optimum)
            for c in exp.cells()] if tracker is not None else []  # fmt: skip
    for cell_runs in runs:  # before the workers: they find the parents instead of racing to make them
        cell_runs.open_parent()
    with tempfile.TemporaryDirectory(prefix="logreg-workers-") as tmp:
        spec = write_spec(exp, opts, Path(tmp) / "spec.json")
        command = [sys.executable, "-m", "logreg", "worker", exp.path or "-", "--spec", str(spec)]
        procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(opts.workers)]
        try:
            _watch(exp, store, procs, progress, stop)
        except BaseException:
            _stop_all(procs)
            for cell_runs in runs:
                cell_runs.tracker.end_run(cell_runs.parent, "KILLED")
            raise
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise LogregError(
            f"{len(bad)} of {len(procs)} workers failed (exit status {bad}). "
            "Their completed trials are kept; see their errors above and re-run to resume."
        )
    for cell_runs in runs:
        study = st.open_study(exp, cell_runs.cell, store)
        cell_runs.reconcile(study)  # runs of workers that died
        if opts.finalize:
            cell_runs.finalize(study, opts.plots, workdir)
    return runs


def _watch(exp: Experiment, store, procs, progress, stop) -> None:
    """Show the workers' progress until they exit; a stop (Ctrl-C, SIGTERM) is forwarded to them."""
    studies = [(st.open_study(exp, c, store), exp.trials_per_cell(c[2])) for c in exp.cells()]

    def finished() -> int:
        with store.errors():
            return sum(min(st.count_finished(s), n) for s, n in studies)

    seen = finished()
    while any(p.poll() is None for p in procs):
        if stop():
            raise KeyboardInterrupt("stopped")
        time.sleep(POLL_S)
        now = finished()
        progress.advance(now - seen, f"{len(procs)} workers")
        seen = now


def _stop_all(procs) -> None:
    """SIGINT (as Ctrl-C) to the workers still running: each stops after its epoch; then wait."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            p.kill()
