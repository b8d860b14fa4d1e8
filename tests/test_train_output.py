"""What `logreg train` shows while training (progress lines, --quiet, the bar) and --plot."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from logreg import TrainConfig, train
from logreg.cli.train import progress_line

pytestmark = pytest.mark.usefixtures("single_thread")

PNG = b"\x89PNG\r\n\x1a\n"
LINE = re.compile(r"^epoch +(\d+)/(\d+)  train loss ([\d.]+)  val loss ([\d.]+)  train accuracy ([\d.]+)")


def _progress(out: str) -> list[tuple[int, float, float]]:
    found = [LINE.match(line) for line in out.splitlines()]
    return [(int(m[1]), float(m[3]), float(m[4])) for m in found if m]


def test_a_line_per_evaluation_point_as_training_goes(run_cli):
    status, out, err = run_cli(
        "train", "--dataset", "iris", "--optimizer", "sgd", "--epochs", "12", "--eval-every", "3"
    )
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("iris: numpy + sgd (lr=0.5) on cpu, 12 epochs")
    points = _progress(out)
    assert [p[0] for p in points] == [3, 6, 9, 12]  # every evaluation point
    # The numbers are the run's own history (the same config through the Python API).
    history = train(TrainConfig(dataset="iris", optimizer="sgd", epochs=12, eval_every=3)).history
    assert [p[1] for p in points] == pytest.approx(history["train_loss"], abs=5e-5)
    assert [p[2] for p in points] == pytest.approx(history["val_loss"], abs=5e-5)
    # The progress comes before the final summary.
    assert lines.index("after 12 epochs:") == 5 and lines[6].startswith("  train loss")


def test_many_evaluation_points_print_about_ten_lines_and_the_last(run_cli):
    status, out, _ = run_cli("train", "--dataset", "blobs", "--epochs", "95")
    assert status == 0
    assert [p[0] for p in _progress(out)] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]


def test_quiet_prints_only_the_summary(run_cli):
    status, out, err = run_cli("train", "--dataset", "hours", "--epochs", "30", "--quiet")
    assert status == 0 and err == ""
    assert _progress(out) == []
    assert out.startswith("hours: numpy + adam (lr=0.05) on cpu, 30 epochs, 3 training rows\n  train loss")


def test_json_stays_one_object_without_progress_lines(run_cli):
    status, out, err = run_cli("train", "--dataset", "blobs", "--epochs", "20", "--json")
    assert status == 0 and err == ""
    assert out.count("\n") == 1 and json.loads(out)["timings"]["epochs_run"] == 20


def test_progress_line_shows_lr_when_the_metrics_have_it():
    metrics = {"train_loss": 0.5, "val_loss": 0.25, "train_accuracy": 0.75, "val_accuracy": 1.0}
    assert progress_line(7, 100, metrics) == (
        "epoch   7/100  train loss 0.5000  val loss 0.2500  train accuracy 0.7500  val accuracy 1.0000"
    )
    assert progress_line(7, 100, {**metrics, "lr": 0.0125}).endswith("  lr 0.0125")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_stderr_only_when_it_is_a_terminal(monkeypatch, capsys):
    from logreg.cli import main
    from logreg.cli import train as train_cli

    monkeypatch.setattr(train_cli, "BAR_DELAY_S", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["train", "--dataset", "blobs", "--epochs", "40", "--eval-every", "10"]) == 0
    out = capsys.readouterr().out
    assert "epoch" in terminal.getvalue() and "40/40" in terminal.getvalue()  # the tqdm bar
    assert [p[0] for p in _progress(out)] == [10, 20, 30, 40]  # the lines still on stdout


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["--dataset", "hours"], "curve"),
        (["--dataset", "blobs", "--epochs", "10"], "boundary"),
    ],
)
def test_plot_writes_a_png(tmp_path, run_cli, argv, kind):
    path = tmp_path / f"{kind}.png"
    status, out, err = run_cli("train", *argv, "--plot", path, "--quiet")
    assert status == 0, err
    assert path.read_bytes()[:8] == PNG and f"plot written to {path}" in out


def test_plot_of_a_one_column_csv(tmp_path, write_table, run_cli):
    data = write_table(
        {"hours": [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4] * 5, "passed": [0, 0, 0, 1, 0, 1, 1, 1] * 5}
    )
    path = tmp_path / "p.png"
    status, _, err = run_cli("train", "--data", data, "--target", "passed", "--plot", path, "--quiet")
    assert status == 0, err
    assert path.read_bytes()[:8] == PNG


def test_plot_of_an_unsupported_dataset_exits_2_before_training(tmp_path, run_cli):
    path = tmp_path / "p.png"
    status, out, err = run_cli("train", "--dataset", "iris", "--plot", path)
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert "--plot draws datasets with one feature" in err and "iris has 4 features" in err
    assert not path.exists()


def _drawn_fitted_curve(result, path, monkeypatch):
    """The (x, y) points of the first line plots.fitted_curve draws, read from matplotlib itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from logreg.report import plots

    drawn = {}
    real_close = plt.close

    def keep(fig):
        drawn["lines"] = [line.get_xydata() for line in fig.axes[0].get_lines()]
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    plots.fitted_curve(result, "t", path)
    return drawn["lines"][0]


def test_fitted_curve_is_the_models_probability(tmp_path, monkeypatch):
    # The curve drawn is predict_proba over the x grid: check it through matplotlib's own data.
    result = train(TrainConfig(dataset="hours", optimizer="momentum"))
    curve = _drawn_fitted_curve(result, tmp_path / "c.png", monkeypatch)
    assert curve[:, 0].min() < 1 and curve[:, 0].max() > 4  # the data and the 4-hour probe
    expected = result.predict_proba(curve[:, :1])[:, 1]
    assert curve[:, 1] == pytest.approx(expected)


def test_fitted_line_of_the_linear_model_is_the_tutorials_y_equals_2x(tmp_path, monkeypatch, run_cli):
    # line: x = 1, 2, 3 -> y = 2, 4, 6. The drawn line is y = 2x (the closed form), over the data.
    result = train(
        TrainConfig(dataset="line", model="linear", optimizer="sgd", lr=0.05, epochs=300, dtype="float64")
    )
    line = _drawn_fitted_curve(result, tmp_path / "l.png", monkeypatch)
    assert line[:, 1] == pytest.approx(2 * line[:, 0], abs=1e-3)
    status, out, err = run_cli(
        "train", "--dataset", "line", "--model", "linear", "--lr", "0.05", "--optimizer", "sgd",
        "--plot", tmp_path / "cli.png", "--quiet",
    )  # fmt: skip
    assert status == 0, err
    assert (tmp_path / "cli.png").read_bytes()[:8] == PNG


def test_the_sweep_logs_the_fitted_curve_of_a_one_feature_dataset(tmp_path):
    from mlflow.tracking import MlflowClient

    from logreg.tune import SweepOptions, run_sweep, validate

    raw = {"name": "curve", "datasets": ["hours", "blobs"], "impls": ["numpy"], "optimizers": ["adam"]}
    exp = validate({**raw, "n_trials": 2, "epochs": 10, "pruner": {"name": "none"}}, str(tmp_path / "c.toml"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    opts = SweepOptions(storage=str(tmp_path / "j.log"), tracking_uri=uri, progress=False, results_dir=None)
    run_sweep(exp, opts)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sweep/curve")
    parents = client.search_runs([experiment.experiment_id], "tags.`logreg.run_kind` = 'study'")
    plots = {
        run.data.tags["logreg.study"].split("/")[1]: {
            a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "plots")
        }
        for run in parents
    }
    assert "best_fitted_curve.png" in plots["hours"] and "best_decision_boundary.png" not in plots["hours"]
    assert "best_decision_boundary.png" in plots["blobs"] and "best_fitted_curve.png" not in plots["blobs"]
