"""Goal 3: training time until test accuracy reaches lbfgs's optimum - 0.002, against scikit-learn."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from logreg.bench.throughput import GOAL_DATASET
from logreg.config import TrainConfig
from logreg.data import load_split
from logreg.report.tables import records_table, write_csv
from logreg.train import train

# Settings tried per optimizer (mini-batch, 1-3 epochs); every one is reported.
TTT_SETTINGS = {
    "sgd": [{"lr": 0.5, "batch_size": 4096}, {"lr": 1.0, "batch_size": None}],
    "momentum": [{"lr": 0.05, "batch_size": 4096}, {"lr": 0.5, "batch_size": None}],
    "adam": [{"lr": 0.01, "batch_size": 4096}, {"lr": 0.003, "batch_size": 1024}],
}


def _sklearn_rows(split, tolerance: float, echo: Callable[[str], None]) -> list[dict]:
    """scikit-learn's LogisticRegression(lbfgs) (its test accuracy sets the target) and
    SGDClassifier(log_loss), timed on the same rows. The lbfgs row comes first."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    t0 = time.perf_counter()
    lbfgs = LogisticRegression(solver="lbfgs", max_iter=1000).fit(split.X_train, split.y_train)
    lbfgs_s = time.perf_counter() - t0
    optimum = float(lbfgs.score(split.X_test, split.y_test))
    target = optimum - tolerance
    echo(f"lbfgs: test accuracy {optimum:.4f} in {lbfgs_s:.2f} s; target {target:.4f}")
    t0 = time.perf_counter()
    sgdc = SGDClassifier(loss="log_loss", random_state=0).fit(split.X_train, split.y_train)
    sgdc_s = time.perf_counter() - t0
    acc = float(sgdc.score(split.X_test, split.y_test))
    echo(f"SGDClassifier: test accuracy {acc:.4f} in {sgdc_s:.2f} s")
    common = {"impl": "scikit-learn"}
    return [
        {
            **common,
            "optimizer": "LogisticRegression(lbfgs)",
            "lr": "",
            "batch_size": "full",
            "test_accuracy": optimum,
            "seconds": lbfgs_s,
            "reached": True,
            "epochs_run": int(lbfgs.n_iter_[0]),
        },
        {
            **common,
            "optimizer": "SGDClassifier(log_loss)",
            "lr": "optimal",
            "batch_size": 1,
            "test_accuracy": acc,
            "seconds": sgdc_s,
            "reached": acc >= target,
            "epochs_run": int(sgdc.n_iter_),
        },
    ]


def _our_row(
    split, dataset: str, impl: str, optimizer: str, s: dict, epochs: int, target: float, threads: int = 0
) -> dict:
    """One implementation x optimizer x setting, trained until the target or `epochs`."""
    cfg = TrainConfig(
        torch_threads=threads,
        dataset=dataset,
        impl=impl,
        optimizer=optimizer,
        lr=s["lr"],
        batch_size=s["batch_size"],
        epochs=epochs,
        target_accuracy=target,
    )
    res = train(cfg, split)
    ttt = res.timings["time_to_target_seconds"]
    reached = bool(np.isfinite(ttt))
    return {
        "impl": impl,
        "optimizer": optimizer,
        "lr": s["lr"],
        "batch_size": s["batch_size"] or "full",
        "test_accuracy": res.metrics["test_accuracy"],
        "seconds": ttt if reached else res.timings["fit_seconds"],
        "reached": reached,
        "epochs_run": res.timings["epochs_run"],
    }


def time_to_target(
    dataset: str = GOAL_DATASET,
    tolerance: float = 0.002,
    impls=("numpy", "autograd", "module"),
    max_epochs: int = 3,
    echo: Callable[[str], None] = print,
    torch_threads: int = 0,
):
    """Goal 3: training time until test accuracy >= (lbfgs optimum - tolerance), per impl x
    optimizer, against scikit-learn's LogisticRegression(lbfgs) and SGDClassifier on the same rows."""
    split = load_split(TrainConfig(dataset=dataset))
    rows = _sklearn_rows(split, tolerance, echo)
    lbfgs_s, target = rows[0]["seconds"], rows[0]["test_accuracy"] - tolerance
    for impl in impls:
        for optimizer, settings in TTT_SETTINGS.items():
            for s in settings:
                epochs = max_epochs if s["batch_size"] else 30
                row = _our_row(split, dataset, impl, optimizer, s, epochs, target, torch_threads)
                rows.append(row)
                echo(
                    f"{impl:9s} {optimizer:9s} lr={s['lr']:<6} batch={s['batch_size'] or 'full':<5} "
                    + (
                        f"target in {row['seconds']:.3f} s ({row['seconds'] / lbfgs_s:.2f}x lbfgs)"
                        if row["reached"]
                        else f"missed target in {row['seconds']:.2f} s"
                    )
                )
    for r in rows:
        r["ratio_to_lbfgs"] = r["seconds"] / lbfgs_s if r["reached"] else float("nan")
        r["target_accuracy"] = target
    return rows


def write_time_to_target(rows, out: Path, dataset: str = GOAL_DATASET, command: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "time_to_target.csv")
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["impl"], r["optimizer"])
        ok = r["reached"]
        if key not in best or (ok and (not best[key]["reached"] or r["seconds"] < best[key]["seconds"])):
            best[key] = r
    target = rows[0]["target_accuracy"]
    text = [
        f"# Time to target on {dataset}\n",
        f"Target: test accuracy >= {target:.4f} (scikit-learn lbfgs optimum - 0.002). Seconds of "
        "training until an epoch-end evaluation first reaches it (evaluation excluded); the best "
        "setting per implementation x optimizer (all settings in time_to_target.csv). "
        f"Made by `{command}`.\n",
        records_table(
            list(best.values()),
            [
                "impl",
                "optimizer",
                "lr",
                "batch_size",
                "epochs_run",
                "test_accuracy",
                "seconds",
                "ratio_to_lbfgs",
                "reached",
            ],
            {
                "test_accuracy": lambda v: f"{v:.4f}",
                "seconds": lambda v: f"{v:.3f}",
                "ratio_to_lbfgs": lambda v: f"{v:.2f}",
            },
        ),
    ]
    (out / "time_to_target.md").write_text("\n".join(text))
