"""optuna, imported quietly (tune/ is the only package that imports it)."""

from __future__ import annotations

import warnings


def import_optuna():
    """optuna, with its own logging off: failed and interrupted trials are recorded (the user
    attr fail_reason, the MLflow tag logreg.error); Optuna's warnings would print them again."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna
