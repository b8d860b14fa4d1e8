"""The champion of each dataset: over its cells, the trial with the best objective (validation
loss by default), registered in MLflow's Model Registry as `<experiment>-<dataset>` with the
alias `champion` (tracking.models). A later sweep logs and registers its best only when it beats
the current champion."""

from __future__ import annotations

from logreg.tracking import champion_value, log_champion, register_champion, registered_name


def register_champions(exp, finalized, tracker) -> list[str]:
    """One line per dataset: the champion's model URI, its cell and value, new or kept."""
    sign = 1 if exp.direction == "minimize" else -1
    best: dict[str, object] = {}
    for runs in finalized:
        if runs.best is not None and (
            runs.cell.dataset not in best or sign * runs.best[0] < sign * best[runs.cell.dataset].best[0]
        ):
            best[runs.cell.dataset] = runs
    lines = []
    for dataset, runs in best.items():
        value, path, result = runs.best
        name = registered_name(exp.name, dataset)
        current = champion_value(tracker.client, name)
        if current is not None and not sign * value < sign * current:
            lines.append(
                f"  models:/{name}@champion  kept: {exp.objective} {current:.4g} (this sweep: {value:.4g})"
            )
            continue
        info = log_champion(tracker.uri, runs.parent, path, result.model, _example(result.split))
        version = register_champion(tracker.client, info, runs.parent, name, value)
        lines.append(
            f"  models:/{name}@champion  {runs.cell_label}: {exp.objective} {value:.4g} (version {version})"
        )
    return lines


def _example(split):
    """Test rows as users pass them: raw (unstandardised) float64 feature rows; five, or two of a
    sparse split (dense in the example: thousands of columns each)."""
    X = split.X_test[: 2 if split.sparse else 5]
    X = X.toarray() if split.sparse else X
    return X.astype("float64") * split.scale + split.mean
