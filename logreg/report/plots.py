"""PNG figures with matplotlib (Agg backend): study and run plots from plain data."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
