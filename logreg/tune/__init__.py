"""Sweeps: experiment files, Optuna studies, workers (the only package that imports optuna).

storage     Optuna storages, one policy per kind (journal file, RDB with heartbeats, gRPC proxy)
journal     the journal file: appended without fsync, checked (and a torn last record cut) on open
study       one study per cell: sampler, pruner, the config a trial suggests, counts
trial       the objective (a TrialOutcome per trial) and run_cell
cell        the MLflow side of a study: parent run, one run per trial, reconcile, finalize
solver      F* solved while a trial trains
sweep       run_sweep and run_worker; Ctrl-C / SIGTERM
workers     sweep --workers N
summary     best trial per cell beside scikit-learn
samplers    the sampler comparison (grid, random, qmc, tpe, gp) over seeds
progress    the progress bar
proxy       Optuna's gRPC storage proxy (logreg storage-proxy)
"""

from logreg.experiment import Experiment, load_experiment, validate
from logreg.tune.cell import run_name
from logreg.tune.storage import DEFAULT_STORAGE, open_storage
from logreg.tune.sweep import SweepOptions, run_sweep, run_worker

__all__ = [
    "DEFAULT_STORAGE",
    "Experiment",
    "SweepOptions",
    "load_experiment",
    "open_storage",
    "run_name",
    "run_sweep",
    "run_worker",
    "validate",
]
