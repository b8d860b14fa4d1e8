"""The sweep's summary: per cell the best trial, with scikit-learn's accuracy on the same split.

Model linear (regression) cells have R^2 instead: the best trial's test R^2 beside the closed-form
least-squares solution's (numpy.linalg.lstsq) and scikit-learn LinearRegression's.
"""

from __future__ import annotations

from logreg.experiment import Cell, Experiment
from logreg.report.headline import with_gaps
from logreg.report.reference import regression_references, sklearn_test_accuracy
from logreg.report.summary import hyperparameters
from logreg.tune import study as st


def summarize(exp: Experiment, store):
    """Per cell: the best trial's test accuracy (R^2 for linear), hyperparameters and fit time,
    scikit-learn's on the same split beside it, and the gap between them; `trials` counts every
    trial of the study, `completed` those that completed (not pruned, diverged or failed)."""
    import pandas as pd

    refs: dict[str, float] = {}
    regression_refs: dict[str, dict[str, float]] = {}
    linear = any(c.model == "linear" for c in exp.cells())
    rows = []
    for cell in exp.cells():
        dataset, impl, optimizer, device, model, compiled = Cell(*cell)
        study = st.open_study(exp, cell, store)
        best = st.best_trial(study)
        res = best.user_attrs.get("result", {}) if best else {}
        nan = float("nan")
        if model == "linear":
            if dataset not in regression_refs:
                regression_refs[dataset] = regression_references(dataset, exp.seed, exp.dtype)
            scores = {"test_accuracy": nan, "sklearn_test_accuracy": nan}
            scores.update({"test_r2": res.get("test_r2", nan), **regression_refs[dataset]})
        else:
            if dataset not in refs:
                refs[dataset] = sklearn_test_accuracy(dataset, exp.seed, exp.dtype)
            scores = {"test_accuracy": res.get("test_accuracy", nan), "sklearn_test_accuracy": refs[dataset]}
            if linear:
                scores.update({"test_r2": nan, "lstsq_test_r2": nan, "sklearn_test_r2": nan})
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "impl": impl,
                "optimizer": optimizer,
                "device": device,
                **({"compile": compiled} if any(c.compile for c in exp.cells()) else {}),
                "trials": len(study.get_trials(deepcopy=False)),
                "completed": sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)),
                f"best_{exp.objective}": best.value if best else float("nan"),
                **scores,
                "fit_seconds": res.get("fit_seconds", float("nan")),
                "best_trial": best.number if best else -1,
                "hyperparameters": hyperparameters(best.params) if best else "",
            }
        )
    df = with_gaps(pd.DataFrame(rows))
    order = [c for c in df.columns if c != "gap_to_sklearn"]
    at = order.index("fit_seconds")  # the gap beside the two scores it compares
    return df[order[:at] + ["gap_to_sklearn"] + order[at:]]
