"""The sampler comparison's presentation: median and spread of the best-so-far curves, the table
(best after some trials, mean ranks), and its files. tune.samplers runs the studies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from logreg.paths import check_output_dir, write_text
from logreg.report import plots as figures
from logreg.report.tables import markdown_table, write_csv

QUANTILES = (0.1, 0.5, 0.9)  # the spread shown: 10th percentile, median, 90th percentile


@dataclass
class SamplerComparison:
    """Best-so-far curves: one row per sampler x cell x seed x trial."""

    name: str
    objective: str
    direction: str
    pruner: str
    samplers: tuple[str, ...]
    seeds: int
    n_trials: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per sampler (every cell and seed)."""
    grid_sizes: dict[str, int] = field(default_factory=dict)
    """Points of the grid per optimizer (when the grid sampler ran)."""

    def cells(self) -> list[str]:
        return list(dict.fromkeys(r["cell"] for r in self.rows))

    def curves(self, cell: str, sampler: str) -> np.ndarray:
        """Best value so far, (seeds, n_trials); NaN before the first complete trial."""
        rows = [r for r in self.rows if r["cell"] == cell and r["sampler"] == sampler]
        out = np.full((self.seeds, self.n_trials), np.nan)
        for r in rows:
            out[r["seed"], r["trial"] - 1] = r["best"]
        return out

    def bands(self, cell: str, sampler: str) -> np.ndarray:
        """(3, n_trials): the 10th percentile, median and 90th percentile over seeds."""
        curves = self.curves(cell, sampler)
        out = np.full((len(QUANTILES), self.n_trials), np.nan)
        ok = ~np.isnan(curves).all(axis=0)
        if ok.any():
            out[:, ok] = np.nanquantile(curves[:, ok], QUANTILES, axis=0)
        return out

    def checkpoints(self) -> list[int]:
        """Trials at which the table reads the curves: about a quarter, a half, and all."""
        return sorted({max(1, self.n_trials // 4), max(1, self.n_trials // 2), self.n_trials})


def _fmt(q: np.ndarray) -> str:
    low, mid, high = q
    if np.isnan(mid):
        return "-"
    return f"{mid:.4g} ({low:.4g}-{high:.4g})"


def to_markdown(comp: SamplerComparison, command: str = "") -> str:
    """Per cell x sampler: median (10-90 %) best value after some trials; then mean ranks."""
    marks = comp.checkpoints()
    columns = ["cell", "sampler"] + [f"best after {t}" for t in marks]
    rows, ranks = [], {s: [] for s in comp.samplers}
    sign = 1 if comp.direction == "minimize" else -1
    for cell in comp.cells():
        finals = {}
        for s in comp.samplers:
            bands = comp.bands(cell, s)
            rows.append([cell, s] + [_fmt(bands[:, t - 1]) for t in marks])
            finals[s] = sign * bands[1, -1]
        order = sorted(comp.samplers, key=lambda s: (np.nan_to_num(finals[s], nan=np.inf), s))
        for rank, s in enumerate(order, 1):
            ranks[s].append(rank)
    ranking = sorted(comp.samplers, key=lambda s: np.mean(ranks[s]))
    rank_rows = [[s, f"{np.mean(ranks[s]):.2f}", f"{comp.seconds.get(s, math.nan):.1f}"] for s in ranking]
    head = [
        f"# Sampler comparison: {comp.name}",
        "",
        f"Best {comp.objective} ({comp.direction}d) after N trials: the median over {comp.seeds} "
        f"sampler seeds, with the 10th-90th percentile in brackets. Same cells, budget "
        f"({comp.n_trials} trials), data split and initial weights for every sampler; in-memory "
        f"Optuna storage, no MLflow. Pruner: {comp.pruner}.",
        "",
    ]
    if command:
        head += [f"Made by: `{command}`", ""]
    grid = ""
    if comp.grid_sizes:
        sizes = ", ".join(f"{o} {n} points" for o, n in comp.grid_sizes.items())
        grid = (
            f"\nThe grid ({sizes}) is spread over the same ranges; it keeps its best after its last point.\n"
        )
    return (
        "\n".join(head)
        + "\n"
        + markdown_table(columns, rows)
        + grid
        + "\nMean rank of the final median over the cells (1 = best), and wall time per sampler:\n\n"
        + markdown_table(["sampler", "mean rank", "seconds"], rank_rows)
    )


def write_comparison(comp: SamplerComparison, out: Path, command: str = "") -> dict[str, Path]:
    """<name>.csv (every curve point), <name>.md (the table), <name>.png (median and spread)."""
    check_output_dir(out, "--out")
    name = comp.name
    md = out / f"{name}.md"
    write_text(md, to_markdown(comp, command))
    bands = {cell: {s: comp.bands(cell, s) for s in comp.samplers} for cell in comp.cells()}
    png = figures.sampler_comparison(
        bands,
        f"{name}: best {comp.objective} so far\nmedian and 10-90 % over {comp.seeds} sampler seeds",
        out / f"{name}.png",
        log_y=comp.objective == "val_loss",
    )
    return {"csv": write_csv(comp.rows, out / f"{name}.csv"), "md": md, "png": png}
