"""The sampler comparison: the same cells and trial budget under each sampler, over several seeds.

For every sampler, cell and replicate, one study runs `n_trials` trials in Optuna's in-memory
storage, untracked (no MLflow): what is compared is the best objective value after each trial.
Replicate r is the study `<experiment>/<dataset>/<impl>/<optimizer>/<device>/rep-r`, so its
sampler seed (from the experiment's seed and that name) differs per replicate and is the same for
every sampler; the data split, initial weights and batch order are the experiment's, fixed.

`grid` needs points: from a file of ranges it gets k points per numeric range (log-spaced for
`lr` and `weight_decay`) and every choice of a categorical key, with k as large as the budget
allows; a grid smaller than the budget keeps its best after its last point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from logreg.errors import LogregError
from logreg.report import plots as figures
from logreg.report.tables import markdown_table, write_csv
from logreg.tune import study as st
from logreg.tune.experiment import RANGES, SAMPLERS, Experiment
from logreg.tune.storage import import_optuna

QUANTILES = (0.1, 0.5, 0.9)  # the spread shown: 10th percentile, median, 90th percentile


def grid_points(space: dict[str, list], n_trials: int) -> dict[str, list]:
    """A grid from a search space of ranges that fits in n_trials: k points per numeric range."""
    numeric = [k for k in space if k in RANGES and min(space[k]) < max(space[k])]
    choices = math.prod(len(v) for k, v in space.items() if k not in numeric)
    k = int(math.floor((n_trials / choices) ** (1 / len(numeric)) + 1e-9)) if numeric else 1
    grid: dict[str, list] = {}
    for key, values in space.items():
        if key not in numeric:
            grid[key] = [min(values)] if key in RANGES else list(values)  # a fixed value, or the choices
            continue
        low, high = min(values), max(values)
        bounds = RANGES[key]
        if k <= 1:
            points = [math.sqrt(low * high) if bounds.get("log") else (low + high) / 2]
        elif bounds.get("log"):
            points = list(np.geomspace(low, high, k))
        else:
            points = list(np.linspace(low, high, k))
        if bounds.get("integer"):
            points = [int(round(p)) for p in points]
        grid[key] = list(dict.fromkeys(float(p) if not bounds.get("integer") else p for p in points))
    return grid


def for_sampler(exp: Experiment, name: str, n_trials: int) -> Experiment:
    """The experiment with `name` as its sampler and n_trials as its budget (validated again).

    Every optimizer's search space is written out; a grid gets points (grid_points), the others
    the ranges (a grid file's points become [min, max]). tpe and gp keep the file's
    n_startup_trials when it has one.
    """
    if name not in SAMPLERS:
        raise LogregError(
            f"The 'samplers' parameter must be a list of {', '.join(SAMPLERS)}. Got {name!r} instead."
        )
    sampler: dict[str, Any] = {"name": name}
    if name in ("tpe", "gp") and "n_startup_trials" in exp.sampler:
        sampler["n_startup_trials"] = exp.sampler["n_startup_trials"]
    search = {}
    for opt in exp.optimizers:
        space = {k: [min(v), max(v)] if k in RANGES else list(v) for k, v in exp.search_space(opt).items()}
        search[opt] = grid_points(space, n_trials) if name == "grid" else space
    return exp.override(sampler=sampler, search=search, n_trials=n_trials)


@dataclass
class SamplerComparison:
    """Best-so-far curves: one row per sampler x cell x seed x trial."""

    experiment: Experiment
    samplers: tuple[str, ...]
    seeds: int
    n_trials: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per sampler (every cell and seed)."""

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


def _best_so_far(trials, direction: str, n_trials: int) -> list[tuple[float, float]]:
    """(value, best so far) per trial that counts; a shorter run (a grid) keeps its last best."""
    optuna = import_optuna()
    better = min if direction == "minimize" else max
    counted = [
        t
        for t in trials
        if t.state in st.finished_states()
        or (
            t.state == optuna.trial.TrialState.FAIL
            and str(t.user_attrs.get("fail_reason", "")).startswith("diverged")
        )
    ]
    out, best = [], math.nan
    for t in counted[:n_trials]:
        value = t.value if t.state == optuna.trial.TrialState.COMPLETE else math.nan
        if not math.isnan(value):
            best = value if math.isnan(best) else better(best, value)
        out.append((value, best))
    while out and len(out) < n_trials:
        out.append((math.nan, out[-1][1]))
    return out


def _warm_up(exp: Experiment) -> None:
    """One short run per cell first, so the first sampler's wall time holds no imports or loads."""
    from logreg.config import TrainConfig
    from logreg.train import train

    for dataset, impl, optimizer, device, model, compiled in exp.cells():
        config = TrainConfig(
            dataset=dataset,
            model=model,
            impl=impl,
            optimizer=optimizer,
            device=device,
            compile=compiled,  # (its compile time stays out of the sampler's wall time too)
            dtype=exp.dtype,
            seed=exp.seed,
            epochs=1,
        )
        train(config)


def compare_samplers(
    exp: Experiment,
    samplers: Sequence[str],
    seeds: int,
    n_trials: int,
    on_study: Callable[[str], None] | None = None,
) -> SamplerComparison:
    """Run every sampler x cell x seed study in memory; return the best-so-far curves."""
    import time

    optuna = import_optuna()
    exps = {name: for_sampler(exp, name, n_trials) for name in samplers}  # every error before any work
    result = SamplerComparison(exp, tuple(samplers), seeds, n_trials)
    hooks = {"start": lambda trial, config: None, "finish": lambda *a: None, "done": lambda outcome: None}
    _warm_up(exp)
    for name, e in exps.items():
        started = time.perf_counter()
        for cell in e.cells():
            for seed in range(seeds):
                study_name = f"{e.study_name(cell)}/rep-{seed}"
                study = optuna.create_study(
                    study_name=study_name,
                    direction=e.direction,
                    sampler=st.make_sampler(e, study_name, cell[2]),
                    pruner=st.make_pruner(e),
                )
                st.run_cell(e, cell, study, hooks, overrides={"torch_threads": 1})
                label = e.study_name(cell).split("/", 1)[1].removesuffix("/cpu")  # dataset/[model/]impl/opt
                for i, (value, best) in enumerate(_best_so_far(study.trials, e.direction, n_trials), 1):
                    result.rows.append(
                        {
                            "sampler": name,
                            "cell": label,
                            "seed": seed,
                            "trial": i,
                            "value": value,
                            "best": best,
                        }
                    )
                if on_study is not None:
                    on_study(study_name)
        result.seconds[name] = time.perf_counter() - started
    return result


def _fmt(q: np.ndarray) -> str:
    low, mid, high = q
    if np.isnan(mid):
        return "-"
    return f"{mid:.4g} ({low:.4g}-{high:.4g})"


def to_markdown(comp: SamplerComparison, command: str = "") -> str:
    """Per cell x sampler: median (10-90 %) best value after some trials; then mean ranks."""
    exp = comp.experiment
    marks = comp.checkpoints()
    columns = ["cell", "sampler"] + [f"best after {t}" for t in marks]
    rows, ranks = [], {s: [] for s in comp.samplers}
    sign = 1 if exp.direction == "minimize" else -1
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
        f"# Sampler comparison: {exp.name}",
        "",
        f"Best {exp.objective} ({exp.direction}d) after N trials: the median over {comp.seeds} "
        f"sampler seeds, with the 10th-90th percentile in brackets. Same cells, budget "
        f"({comp.n_trials} trials), data split and initial weights for every sampler; in-memory "
        f"Optuna storage, no MLflow. Pruner: {exp.pruner['name']}.",
        "",
    ]
    if command:
        head += [f"Made by: `{command}`", ""]
    grid = ""
    if "grid" in comp.samplers:
        g = for_sampler(exp, "grid", comp.n_trials)
        sizes = ", ".join(f"{o} {g.grid_size(o)} points" for o in g.optimizers)
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
    out.mkdir(parents=True, exist_ok=True)
    name = comp.experiment.name
    md = out / f"{name}.md"
    md.write_text(to_markdown(comp, command))
    bands = {cell: {s: comp.bands(cell, s) for s in comp.samplers} for cell in comp.cells()}
    png = figures.sampler_comparison(
        bands,
        f"{name}: best {comp.experiment.objective} so far\n"
        f"median and 10-90 % over {comp.seeds} sampler seeds",
        out / f"{name}.png",
        log_y=comp.experiment.objective == "val_loss",
    )
    return {"csv": write_csv(comp.rows, out / f"{name}.csv"), "md": md, "png": png}
