"""Sweeps: experiment files, Optuna studies, workers (the only package that imports optuna).

experiment  experiment files (TOML), validated on load
storage     Optuna storages: journal file or RDB with heartbeats
study       one study per cell: sampler, pruner, trials
cell        the MLflow side of a study: parent run, trial runs, stale-run repair
sweep       run_sweep (here or N workers) and run_worker
summary     best trial per cell beside scikit-learn
samplers    the sampler comparison (grid, random, qmc, tpe, gp) over seeds
progress    the progress bar
"""

from logreg.tune.cell import run_name
from logreg.tune.experiment import Experiment, load_experiment, validate
from logreg.tune.storage import DEFAULT_STORAGE, open_storage
from logreg.tune.summary import to_markdown
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
    "to_markdown",
    "validate",
]
