"""PNG figures with matplotlib (Agg backend): study and run plots from plain data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from logreg.paths import write_atomic


def png_path(path: str | Path) -> Path:
    """The PNG a figure goes to: PATH itself when it ends in .png, else PATH.png (as matplotlib)."""
    path = Path(path)
    return path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")


def _save(fig, path: str | Path, dpi: int = 90) -> Path:
    """Render to PNG in memory, then write the file whole (paths.write_atomic); close the figure."""
    import io

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        _plt().close(fig)
    return write_atomic(png_path(path), lambda f: f.write(buf.getvalue()), "--plot", "plot.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def optimization_history(rows, direction: str, title: str, path: Path) -> Path:
    """Objective value per trial (complete ones) with the best-so-far line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    done = [(r["number"], r["value"]) for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if done:
        x, y = map(np.array, zip(*done, strict=True))
        best = np.minimum.accumulate(y) if direction == "minimize" else np.maximum.accumulate(y)
        ax.plot(x, y, "o", alpha=0.6, label="trial")
        ax.step(x, best, where="post", color="C3", label="best so far")
    other = [r["number"] for r in rows if r["state"] in ("PRUNED", "FAIL")]
    for n in other:
        ax.axvline(n, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="trial", ylabel="objective", title=title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def param_importances(importances: dict[str, float], title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="C0")
    else:
        ax.text(0.5, 0.5, "too few complete trials to rank parameters", ha="center", va="center")
    ax.set(xlabel="importance (fANOVA)", title=title)
    fig.tight_layout()
    return _save(fig, path)


def learning_curves(history: dict[str, list], title: str, path: Path) -> Path:
    """Train and validation loss and accuracy (R^2 for model linear) against epochs."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    ep = history["epoch"]
    a1.plot(ep, history["train_loss"], label="train")
    a1.plot(ep, history["val_loss"], label="validation")
    score = "accuracy" if "train_accuracy" in history else "r2"
    a1.set(xlabel="epoch", ylabel="log loss" if score == "accuracy" else "mean squared error")
    a2.plot(ep, history[f"train_{score}"], label="train")
    a2.plot(ep, history[f"val_{score}"], label="validation")
    a2.set(xlabel="epoch", ylabel="accuracy" if score == "accuracy" else "R^2")
    a1.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def decision_boundary(result, title: str, path: Path) -> Path:
    """For a 2-D dataset: test points and the fitted P(y=1) = 0.5 line, in raw units."""
    plt = _plt()
    split = result.split
    X = split.X_test * split.scale + split.mean  # back to raw units
    y = split.y_test
    pad = 0.5
    x0 = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, 200)
    x1 = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, 200)
    g0, g1 = np.meshgrid(x0, x1)
    proba = result.predict_proba(np.column_stack([g0.ravel(), g1.ravel()]))[:, 1].reshape(g0.shape)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    cs = ax.contourf(g0, g1, proba, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
    ax.contour(g0, g1, proba, levels=[0.5], colors="k", linewidths=1.2)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="none")
    fig.colorbar(cs, ax=ax, label="P(class 1)")
    ax.set(xlabel=split.feature_names[0], ylabel=split.feature_names[1], title=title)
    fig.tight_layout()
    return _save(fig, path)


def _fitted_1d(result, x: np.ndarray) -> tuple[np.ndarray, list[str], str]:
    """The fitted curves at raw inputs x: (values (n, curves), curve labels, y-axis label).

    A classifier gives P(y = k | x): class 1 for a binary problem, every class otherwise; the
    linear model its fitted line.
    """
    if result.model.model == "linear":
        return result.model.predict(x[:, None])[:, None], ["fitted line"], "y"
    proba = result.predict_proba(x[:, None])
    names = list(result.split.class_names)
    if proba.shape[1] == 2:
        return proba[:, 1:], [f"P(y = {names[1]} | x)"], f"P(y = {names[1]})"
    return proba, [f"P(y = {c} | x)" for c in names], "P(class)"


def fitted_curve(result, title: str, path: Path) -> Path:
    """For a dataset with one feature: the fitted P(y = 1 | x) curve (linear: the fitted line) over
    the data points, raw units."""
    plt = _plt()
    split = result.split
    parts = [("train", split.X_train, split.y_train, "o"), ("test", split.X_test, split.y_test, "x")]
    raw = {name: X[:, 0] * split.scale[0] + split.mean[0] for name, X, _, _ in parts}
    probe = split.metadata.get("probe")
    probe_x = [probe.x[0]] if probe is not None and probe.metric in result.metrics else []
    lo = min([v.min() for v in raw.values()] + probe_x)
    hi = max([v.max() for v in raw.values()] + probe_x)
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    x = np.linspace(lo - pad, hi + pad, 300)
    values, labels, ylabel = _fitted_1d(result, x)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, label in enumerate(labels):
        ax.plot(x, values[:, j], color=f"C{j}", lw=2, label=label)
    binary = values.shape[1] == 1
    for name, _, y, marker in parts:
        # Classes at their index (0 / 1 for a binary problem): the curve is their probability.
        ax.scatter(raw[name], y, marker=marker, color="k" if binary else None, s=30, label=f"{name} data")
    if probe_x:
        ax.plot([probe.x[0]], [result.metrics[probe.metric]], "s", color="C3", label=probe.label)
    if result.model.model != "linear":
        ax.axhline(0.5, color="0.8", lw=0.8, zorder=0)
    ax.set(xlabel=split.feature_names[0], ylabel=ylabel, title=title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def fit_plot_problem(split) -> str | None:
    """Why `fit_plot` cannot draw this split, or None when it can (one feature, or two and binary)."""
    if split.n_features == 1 or (split.n_features == 2 and split.n_classes == 2):
        return None
    return (
        f"--plot draws datasets with one feature (the fitted curve) or two features and two classes "
        f"(the decision boundary); {split.name} has {split.n_features} features and "
        f"{split.n_classes} classes. Drop --plot, or pick e.g. --dataset hours or blobs."
    )


def fit_plot(result, title: str, path: Path) -> Path:
    """The fitted curve (one feature) or the decision boundary (two features, binary)."""
    if result.split.n_features == 1:
        return fitted_curve(result, title, png_path(path))
    return decision_boundary(result, title, png_path(path))


def sampler_comparison(
    bands: dict[str, dict[str, np.ndarray]], title: str, path: Path, log_y: bool = True
) -> Path:
    """One panel per cell: each sampler's median best-so-far against trials, 10-90 % band shaded.

    `bands[cell][sampler]` is (3, n_trials): the 10th percentile, median and 90th percentile.
    """
    plt = _plt()
    cells = list(bands)
    ncols = min(3, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        for j, (sampler, q) in enumerate(bands[cell].items()):
            x = np.arange(1, q.shape[1] + 1)
            ax.plot(x, q[1], color=f"C{j}", lw=1.6, label=sampler)
            ax.fill_between(x, q[0], q[2], color=f"C{j}", alpha=0.15, lw=0)
        ax.set(title=cell, xlabel="trial", ylabel="best so far")
        if log_y:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(cells) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def study_figures(
    rows, importances: dict[str, float], direction: str, objective: str, title: str, out: Path
) -> list[Path]:
    """A study's figures: the optimization history and the parameter importances."""
    return [
        optimization_history(rows, direction, f"{title}: {objective}", out / "optimization_history.png"),
        param_importances(importances, title, out / "param_importances.png"),
    ]


def best_trial_figures(result, label: str, out: Path) -> list[Path]:
    """The best trial's learning curves, and its fit where the data can be drawn."""
    files = [learning_curves(result.history, label, out / "best_learning_curves.png")]
    split = result.split
    if split.n_features == 2 and split.n_classes == 2 and result.model.hidden is None:
        files.append(decision_boundary(result, label, out / "best_decision_boundary.png"))
    if split.n_features == 1:
        files.append(fitted_curve(result, label, out / "best_fitted_curve.png"))
    return files
