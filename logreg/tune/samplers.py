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
from typing import Any

import numpy as np

from logreg.errors import LogregError
from logreg.experiment import RANGES, SAMPLERS, Experiment
from logreg.report.samplers import SamplerComparison
from logreg.tune import study as st
from logreg.tune.optuna_lib import import_optuna
from logreg.tune.storage import Store
from logreg.tune.trial import run_cell


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
    grid = exps.get("grid")
    sizes = {o: grid.grid_size(o) for o in grid.optimizers} if grid is not None else {}
    result = SamplerComparison(
        exp.name, exp.objective, exp.direction, exp.pruner["name"], tuple(samplers), seeds, n_trials,
        grid_sizes=sizes,
    )  # fmt: skip
    _warm_up(exp)
    for name, e in exps.items():
        started = time.perf_counter()
        for cell in e.cells():
            for seed in range(seeds):
                study_name = f"{e.study_name(cell)}/rep-{seed}"
                memory = Store(optuna.storages.InMemoryStorage(), ":memory:")
                study = optuna.create_study(
                    storage=memory.optuna,
                    study_name=study_name,
                    direction=e.direction,
                    sampler=st.make_sampler(e, study_name, cell[2]),
                    pruner=st.make_pruner(e),
                )
                run_cell(e, cell, study, memory, overrides={"torch_threads": 1})
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
