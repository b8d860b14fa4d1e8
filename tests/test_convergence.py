"""Performance profiles on a hand-made example, and `logreg convergence` on a real store."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from logreg.report import profiles as pf

# Three problems, three methods; times by hand (inf: never reached the target).
TIMES = {
    "p1": {"A": 1.0, "B": 2.0, "C": 8.0},
    "p2": {"A": 3.0, "B": 1.5, "C": math.inf},
    "p3": {"A": math.inf, "B": math.inf, "C": math.inf},
}


def test_ratios_by_hand():
    r = pf.ratios(TIMES)
    assert r["p1"] == {"A": 1.0, "B": 2.0, "C": 8.0}
    assert r["p2"] == {"A": 2.0, "B": 1.0, "C": math.inf}
    assert all(math.isinf(v) for v in r["p3"].values())  # nobody solved it


def test_rho_and_score_by_hand():
    r = pf.ratios(TIMES)
    # rho_A: r = 1 (p1), 2 (p2), inf (p3).
    assert pf.rho(r, "A", 1.0) == pytest.approx(1 / 3)
    assert pf.rho(r, "A", 1.99) == pytest.approx(1 / 3)
    assert pf.rho(r, "A", 2.0) == pytest.approx(2 / 3)
    assert pf.rho(r, "C", 4.0) == 0.0 and pf.rho(r, "C", 8.0) == pytest.approx(1 / 3)
    # score = (1 / (4 - 1)) * integral_1^4 rho: A: ((4 - 1) + (4 - 2)) / 3 problems / 3 = 5 / 9;
    # B: ((4 - 2) + (4 - 1)) / 9 = 5 / 9; C: r = 8 > 4 counts nothing: 0.
    assert pf.score(r, "A") == pytest.approx(5 / 9)
    assert pf.score(r, "B") == pytest.approx(5 / 9)
    assert pf.score(r, "C") == 0.0
    assert pf.solved(r, "C") == pytest.approx(1 / 3)
    # The score is the mean of rho over [1, 4] (a fine Riemann sum agrees).
    taus = [1 + 3 * (i + 0.5) / 30000 for i in range(30000)]
    assert pf.score(r, "A") == pytest.approx(sum(pf.rho(r, "A", t) for t in taus) / len(taus), abs=1e-4)


def test_a_method_fastest_everywhere_scores_one():
    r = pf.ratios({"p": {"A": 2.0, "B": 3.0}, "q": {"A": 1.0, "B": 5.0}})
    assert pf.score(r, "A") == 1.0 and pf.rho(r, "A", 1.0) == 1.0


@pytest.fixture(scope="module")
def convergence_store(tmp_path_factory, repo_root):
    from logreg.tune import SweepOptions, load_experiment, run_sweep

    d = tmp_path_factory.mktemp("conv")
    uri = f"sqlite:///{d}/mlflow.db"
    exp = load_experiment(repo_root / "experiments" / "convergence.toml").override(n_trials=2, repeats=3)
    run_sweep(
        exp,
        SweepOptions(
            storage=str(d / "j.log"), tracking_uri=uri, progress=False, plots=False, results_dir=d / "results"
        ),
    )
    return {"dir": d, "uri": uri, "exp": exp}


def test_convergence_command_writes_curves_table_and_profiles(convergence_store, run_cli, tmp_path):
    status, out, err = run_cli("convergence", convergence_store["uri"], "--out", tmp_path)
    assert status == 0, err
    for name in ("suboptimality_time.png", "suboptimality_epochs.png", "profiles.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "time_to_eps.csv")
    # 2 datasets x 2 impls x 2 optimizers, 3 eps each.
    assert len(table) == 8 * 3 and set(table["eps"]) == {1e-2, 1e-4, 1e-6}
    assert (table["runs"] == 2 + 3).all()  # 2 trials and 3 repeats per cell
    md = (tmp_path / "time_to_eps.md").read_text()
    unreached = table["seconds"].isna().sum()
    assert md.count("not reached") == unreached and unreached > 0  # written out, not blank
    profiles = pd.read_csv(tmp_path / "profiles.csv")
    assert len(profiles) == 4 and profiles["score"].between(0, 1).all()
    assert "score" in out


def test_repeats_run_the_best_config_with_more_seeds(convergence_store):
    from logreg.report.convergence import load_convergence_runs

    runs = load_convergence_runs([convergence_store["uri"]])
    repeats = runs[runs["kind"] == "repeat"]
    assert len(repeats) == 8 * 3  # every cell's best config, 3 seeds
    assert repeats.groupby("study").size().eq(3).all()


def test_convergence_on_a_store_without_suboptimality_is_one_line(run_cli, tmp_path):
    from logreg.tracking import make_client

    make_client(f"sqlite:///{tmp_path}/empty.db")  # MLflow's tables, no runs
    status, _, err = run_cli("convergence", f"sqlite:///{tmp_path}/empty.db", "--out", tmp_path / "o")
    assert status == 2 and "No runs with a suboptimality found" in err


def test_every_trial_run_logs_suboptimality_against_its_own_optimum(convergence_store):
    # F* is solved in a helper process while the trial trains and logged when it comes in:
    # by the sweep's end every trial run has it, and the series is train_objective - F*.
    import mlflow
    from mlflow.tracking import MlflowClient

    from logreg.optimum import optimum_for

    client = MlflowClient(convergence_store["uri"])
    mlflow.set_tracking_uri(convergence_store["uri"])
    runs = mlflow.search_runs(
        experiment_names=["sweep/convergence"], filter_string="tags.`logreg.run_kind` = 'trial'"
    )
    assert len(runs) == 8 * 2
    from logreg import TrainConfig, load_split

    for _, run in runs.iterrows():
        rid = run["run_id"]
        assert run["tags.logreg.optimum_solver"].startswith("Newton"), run["tags.logreg.optimum_solver"]
        objective = [m.value for m in client.get_metric_history(rid, "train_objective")]
        sub = [m.value for m in client.get_metric_history(rid, "suboptimality")]
        f_star = run["metrics.optimum_value"]
        assert len(sub) == len(objective) == 8
        assert sub == pytest.approx([v - f_star for v in objective], abs=1e-15)
        assert min(sub) >= -1e-12 * f_star  # float64 trials: never below the optimum
        # F* is the optimum of this trial's own objective (its weight decay), solved again here.
        config = TrainConfig(
            dataset=run["params.dataset"], weight_decay=float(run["params.weight_decay"]), dtype="float64"
        )
        assert f_star == pytest.approx(optimum_for(config, load_split(config)).value, rel=1e-12)
        assert not math.isnan(run["metrics.time_to_eps_1e-2"]) or not math.isnan(
            run["metrics.rel_suboptimality"]
        )
