"""The sweep's summary: per cell the best trial, with scikit-learn's accuracy on the same split.

Model linear (regression) cells have R^2 instead: the best trial's test R^2 beside the closed-form
least-squares solution's (numpy.linalg.lstsq) and scikit-learn LinearRegression's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.paths import check_output_dir, write_text
from logreg.report.tables import frame_table
from logreg.tune import study as st
from logreg.tune.experiment import Cell, Experiment


def sklearn_reference(dataset: str, exp: Experiment) -> float:
    """scikit-learn LogisticRegression (lbfgs, default C=1) test accuracy on the same split."""
    from sklearn.linear_model import LogisticRegression

    split = load_split(TrainConfig(dataset=dataset, seed=exp.seed, dtype=exp.dtype))
    model = LogisticRegression(max_iter=5000).fit(split.X_train, split.y_train)
    return float(model.score(split.X_test, split.y_test))


def regression_references(dataset: str, exp: Experiment) -> dict[str, float]:
    """Test R^2 of the closed-form least squares (numpy.linalg.lstsq on [X, 1]) and of
    scikit-learn LinearRegression, fitted on the same training part."""
    import numpy as np
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    split = load_split(TrainConfig(dataset=dataset, model="linear", seed=exp.seed, dtype=exp.dtype))
    X_train, X_test = (np.asarray(a, dtype=np.float64) for a in (split.X_train, split.X_test))
    w, *_ = np.linalg.lstsq(np.column_stack([X_train, np.ones(len(X_train))]), split.y_train, rcond=None)
    lstsq = r2_score(split.y_test, X_test @ w[:-1] + w[-1])
    sk = LinearRegression().fit(X_train, split.y_train).score(X_test, split.y_test)
    return {"lstsq_test_r2": float(lstsq), "sklearn_test_r2": float(sk)}


def _hyperparams(params: dict[str, Any]) -> str:
    out = []
    for k, v in params.items():
        out.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(out)


def summarize(exp: Experiment, storage):
    """Per cell: best trial's test accuracy, hyperparameters, fit time; sklearn beside it."""
    import pandas as pd

    refs: dict[str, float] = {}
    regression_refs: dict[str, dict[str, float]] = {}
    linear = any(c.model == "linear" for c in exp.cells())
    rows = []
    for cell in exp.cells():
        dataset, impl, optimizer, device, model, compiled = Cell(*cell)
        study = st.open_study(exp, cell, storage)
        best = st.best_trial(study)
        res = best.user_attrs.get("result", {}) if best else {}
        nan = float("nan")
        if model == "linear":
            if dataset not in regression_refs:
                regression_refs[dataset] = regression_references(dataset, exp)
            scores = {"test_accuracy": nan, "sklearn_test_accuracy": nan}
            scores.update({"test_r2": res.get("test_r2", nan), **regression_refs[dataset]})
        else:
            if dataset not in refs:
                refs[dataset] = sklearn_reference(dataset, exp)
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
                "trials": st.count_finished(study),
                f"best_{exp.objective}": best.value if best else float("nan"),
                **scores,
                "fit_seconds": res.get("fit_seconds", float("nan")),
                "best_trial": best.number if best else -1,
                "hyperparameters": _hyperparams(best.params) if best else "",
            }
        )
    return pd.DataFrame(rows)


def write_summary(df, out_dir: Path) -> tuple[Path, Path]:
    """summary.csv and summary.md, written whole to a temporary file then renamed."""
    check_output_dir(out_dir, "--results-dir")
    csv, md = out_dir / "summary.csv", out_dir / "summary.md"
    for path, text in ((csv, df.to_csv(index=False)), (md, to_markdown(df))):
        write_text(path, text)
    return csv, md


def _number(v) -> str:
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def to_markdown(df) -> str:
    """The summary as a GitHub table: floats to 4 decimals (small ones in e-notation)."""
    return frame_table(df, {c: _number for c in df.columns if df[c].dtype.kind == "f"})
