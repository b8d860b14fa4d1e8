"""Every documented error: LogregError with a message that says what, what arrived and how to fix
it (Python API), and exit status 2 with exactly one line on stderr, no traceback (CLI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from logreg import LogregError, TrainConfig, make_split, train


@pytest.fixture
def files(tmp_path):
    """Good and bad data files; paths by short name."""
    n = 12
    good = pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.arange(n) % 5, "label": np.arange(n) % 2})
    paths = {}

    def put(name, df=None, text=None, raw=None):
        path = tmp_path / name
        if df is not None:
            df.to_parquet(path) if name.endswith(".parquet") else df.to_csv(path, index=False)
        elif text is not None:
            path.write_text(text)
        else:
            path.write_bytes(raw)
        paths[name] = str(path)

    put("ok.csv", good)
    put("ok.parquet", good)
    put("strings.csv", good.assign(name=[f"n{i}" for i in range(n)], city="Paris"))
    put("nan.csv", good.assign(a=[np.nan] + [1.0] * (n - 1), b=[np.inf] + [2.0] * (n - 1), c=1.0))
    put("neg_inf.parquet", good.assign(b=-np.inf))
    put("one_class.csv", good.assign(label="only"))
    put("word_labels.csv", good.assign(label=np.where(np.arange(n) % 2, "pass", "fail")))
    put("data.txt", text="a,label\n1,0\n2,1\n")
    put("data.xlsx", raw=b"PK\x03\x04 not really a workbook")
    put("not_parquet.parquet", text="a,label\n1,0\n")
    put("binary.csv", raw=bytes(range(256)) * 8)
    put("empty.csv", text="")
    put("empty.parquet", text="")
    put("header_only.csv", text="a,b,label\n")
    put("labels_only.csv", text="label\n0\n1\n")
    paths["missing.csv"] = str(tmp_path / "missing.csv")
    paths["dir"] = str(tmp_path)
    return paths


# (id, TrainConfig keyword arguments, CLI arguments of `logreg train`, message regex).
# File paths are written as {name} and filled in from the `files` fixture.
CASES = [
    (
        "unknown-dataset",
        {"dataset": "mnist"},
        ["--dataset", "mnist"],
        r"Unknown dataset 'mnist'\. Available datasets: hours, blobs, moons, classification, iris, "
        r"breast_cancer, digits, synthetic, text, line, diabetes; LIBSVM's, once fetched "
        r"\(logreg datasets fetch NAME\): a9a, w8a, real-sim, rcv1.binary, news20.binary, covtype.binary "
        r"\(or --data FILE for your own CSV, Parquet or svmlight file\)",
    ),
    (
        "unknown-model",
        {"model": "svm"},
        ["--model", "svm"],
        r"The 'model' parameter must be one of logistic, mlp, linear\. Got 'svm' instead\.",
    ),
    (
        "hidden-below-1",
        {"model": "mlp", "hidden": 0},
        ["--model", "mlp", "--hidden", "0"],
        r"The 'hidden' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "activation-typo",
        {"model": "mlp", "activation": "rleu"},
        ["--model", "mlp", "--activation", "rleu"],
        r"The 'activation' parameter must be one of relu, leaky_relu, tanh, none\. Got 'rleu' instead\.",
    ),
    (
        "unknown-schedule",
        {"schedule": "linear"},
        ["--schedule", "linear"],
        r"The 'schedule' parameter must be one of constant, step, exponential, cosine\.",
    ),
    (
        "gamma-zero",
        {"schedule": "step", "gamma": 0.0},
        ["--schedule", "step", "--gamma", "0"],
        r"The 'gamma' parameter must be a float > 0\. Got 0\.0 instead\.",
    ),
    (
        "gamma-negative",
        {"schedule": "exponential", "gamma": -0.5},
        ["--schedule", "exponential", "--gamma", "-0.5"],
        r"The 'gamma' parameter must be a float > 0\. Got -0\.5 instead\.",
    ),
    (
        "step-size-zero",
        {"schedule": "step", "step_size": 0},
        ["--schedule", "step", "--step-size", "0"],
        r"The 'step_size' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "warmup-not-below-epochs",
        {"warmup_epochs": 1},
        ["--warmup-epochs", "1"],
        r"The 'warmup_epochs' parameter must be < epochs \(1\)\. Got 1 instead; use fewer",
    ),
    (
        "classification-dataset-to-linear",
        {"model": "linear", "dataset": "iris"},
        ["--model", "linear", "--dataset", "iris"],
        r"Dataset 'iris' is a classification dataset; model 'linear' needs a numeric target\. "
        r"Use a regression dataset \(line, diabetes, or --data FILE --target NUMERIC_COLUMN\)",
    ),
    (
        "regression-dataset-to-mlp",
        {"model": "mlp", "dataset": "diabetes"},
        ["--model", "mlp", "--dataset", "diabetes"],
        r"Dataset 'diabetes' is a regression dataset; model 'mlp' needs classes\. Use --model linear",
    ),
    (
        "non-numeric-regression-target",
        {"model": "linear", "data": "{word_labels.csv}", "target": "label"},
        ["--model", "linear", "--data", "{word_labels.csv}", "--target", "label"],
        r"The regression target of word_labels\.csv must be numeric\. Got dtype object; pass a numeric "
        r"--target column, or use --model logistic",
    ),
    (
        "bad-synthetic-size",
        {"dataset": "synthetic:n=5"},
        ["--dataset", "synthetic:n=5"],
        r"The synthetic parameter 'n' must be a whole number >= 10\. Got '5'",
    ),
    (
        "bad-synthetic-key",
        {"dataset": "synthetic:rows=5"},
        ["--dataset", "synthetic:rows=5"],
        r"Bad synthetic parameter 'rows=5'.*Use synthetic:n=N,d=D",
    ),
    (
        "size-on-fixed-dataset",
        {"dataset": "iris:n=50"},
        ["--dataset", "iris:n=50"],
        r"Dataset 'iris' takes no size parameters",
    ),
    (
        "unknown-impl",
        {"impl": "jax"},
        ["--impl", "jax"],
        r"The 'impl' parameter must be one of numpy, autograd, module\. Got 'jax' instead\.",
    ),
    (
        "unknown-optimizer",
        {"optimizer": "lbfgs"},
        ["--optimizer", "lbfgs"],
        r"The 'optimizer' parameter must be one of sgd, momentum, adam\. Got 'lbfgs' instead\.",
    ),
    ("lr-zero", {"lr": 0.0}, ["--lr", "0"], r"The 'lr' parameter must be a float > 0\. Got 0\.0 instead\."),
    (
        "lr-negative",
        {"lr": -1.0},
        ["--lr", "-1"],
        r"The 'lr' parameter must be a float > 0\. Got -1\.0 instead\.",
    ),
    (
        "lr-nan",
        {"lr": float("nan")},
        ["--lr", "nan"],
        r"The 'lr' parameter must be a finite float > 0\. Got nan instead\.",
    ),
    (
        "lr-inf",
        {"lr": float("inf")},
        ["--lr", "inf"],
        r"The 'lr' parameter must be a finite float > 0\. Got inf instead\.",
    ),
    (
        "lr-beyond-float32",
        {"lr": 1e39, "optimizer": "sgd"},
        ["--lr", "1e39", "--optimizer", "sgd"],
        r"The 'lr' parameter must be <= 3\.403e\+38 with dtype 'float32' and optimizer 'sgd'\. "
        r"Got 1e\+39 instead; use a smaller lr or --dtype float64\.",
    ),
    (
        "epochs-zero",
        {"epochs": 0},
        ["--epochs", "0"],
        r"The 'epochs' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "epochs-negative",
        {"epochs": -3},
        ["--epochs", "-3"],
        r"The 'epochs' parameter must be an int >= 1\. Got -3 instead\.",
    ),
    *[
        (
            f"test-size-{value}",
            {"test_size": value},
            ["--test-size", str(value)],
            rf"The 'test_size' parameter must be a float > 0 and < 1\. Got {value!r} instead\.",
        )
        for value in (0.0, 1.0, 1.5, -0.25)
    ],
    (
        "batch-size-zero",
        {"batch_size": 0},
        ["--batch-size", "0"],
        r"The 'batch_size' parameter must be an int >= 1\. Got 0 instead\.",
    ),
    (
        "negative-weight-decay",
        {"weight_decay": -0.1},
        ["--weight-decay", "-0.1"],
        r"The 'weight_decay' parameter must be a float >= 0\. Got -0\.1 instead\.",
    ),
    (
        "momentum-with-sgd",
        {"optimizer": "sgd", "momentum": 0.9},
        ["--optimizer", "sgd", "--momentum", "0.9"],
        r"The 'momentum' parameter only applies to optimizer 'momentum'.*use --optimizer momentum",
    ),
    (
        "nesterov-without-momentum",
        {"optimizer": "adam", "nesterov": True},
        ["--optimizer", "adam", "--nesterov"],
        r"Nesterov momentum needs --optimizer momentum with momentum > 0",
    ),
    (
        "missing-file",
        {"data": "{missing.csv}", "target": "label"},
        ["--data", "{missing.csv}", "--target", "label"],
        r"File '.*missing\.csv' not found\. Check the --data path\.",
    ),
    (
        "directory",
        {"data": "{dir}", "target": "label"},
        ["--data", "{dir}", "--target", "label"],
        r"'.*' is a directory\. Pass a CSV or Parquet file to --data\.",
    ),
    (
        "no-target-given",
        {"data": "{ok.csv}"},
        ["--data", "{ok.csv}"],
        r"A data file needs its label column: pass --target COLUMN \(CSV, Parquet\), or --format svmlight",
    ),
    *[
        (
            f"missing-target-column-{suffix}",
            {"data": f"{{ok.{suffix}}}", "target": "y"},
            ["--data", f"{{ok.{suffix}}}", "--target", "y"],
            rf"Column 'y' not found in ok\.{suffix}\. Available columns: a, b, label\.",
        )
        for suffix in ("csv", "parquet")
    ],
    (
        "non-numeric-features",
        {"data": "{strings.csv}", "target": "label"},
        ["--data", "{strings.csv}", "--target", "label"],
        r"Non-numeric feature columns in strings\.csv: name, city\. Encode them as numbers or drop them\.",
    ),
    (
        "nan-and-inf-features",
        {"data": "{nan.csv}", "target": "label"},
        ["--data", "{nan.csv}", "--target", "label"],
        r"Features with NaN or infinite values in nan\.csv: a, b\. Impute or drop those rows\.",
    ),
    (
        "minus-inf-feature-parquet",
        {"data": "{neg_inf.parquet}", "target": "label"},
        ["--data", "{neg_inf.parquet}", "--target", "label"],
        r"Features with NaN or infinite values in neg_inf\.parquet: b\.",
    ),
    (
        "single-class",
        {"data": "{one_class.csv}", "target": "label"},
        ["--data", "{one_class.csv}", "--target", "label"],
        r"The labels of one_class\.csv hold a single class \(only\)\. Logistic regression needs at "
        r"least two classes\.",
    ),
    *[
        (
            f"not-csv-or-parquet-{ext}",
            {"data": f"{{data.{ext}}}", "target": "label"},
            ["--data", f"{{data.{ext}}}", "--target", "label"],
            rf"File '.*data\.{ext}' is not CSV, Parquet or svmlight \(its extension is '\.{ext}'\)\. "
            r"Use a \.csv, \.parquet or \.svm file, or name its format with --format\.",
        )
        for ext in ("txt", "xlsx")
    ],
    (
        "parquet-that-is-not",
        {"data": "{not_parquet.parquet}", "target": "label"},
        ["--data", "{not_parquet.parquet}", "--target", "label"],
        r"File '.*not_parquet\.parquet' could not be read as Parquet: .*[^.]\. Check that it is a "
        r"valid Parquet file\.",
    ),
    (
        "csv-that-is-binary",
        {"data": "{binary.csv}", "target": "label"},
        ["--data", "{binary.csv}", "--target", "label"],
        r"File '.*binary\.csv' could not be read as CSV: .*\. Check its format\.",
    ),
    *[
        (
            f"empty-file-{ext}",
            {"data": f"{{empty.{ext}}}", "target": "label"},
            ["--data", f"{{empty.{ext}}}", "--target", "label"],
            rf"File '.*empty\.{ext}' is empty\. Pass a file with a header row and data rows\.",
        )
        for ext in ("csv", "parquet")
    ],
    (
        "header-only",
        {"data": "{header_only.csv}", "target": "label"},
        ["--data", "{header_only.csv}", "--target", "label"],
        r"File '.*header_only\.csv' has no data rows\. Pass a file with data rows\.",
    ),
    (
        "no-feature-columns",
        {"data": "{labels_only.csv}", "target": "label"},
        ["--data", "{labels_only.csv}", "--target", "label"],
        r"File '.*labels_only\.csv' has no feature columns besides 'label'\. Add feature columns\.",
    ),
    (
        "numpy-on-cuda",
        {"impl": "numpy", "device": "cuda"},
        ["--impl", "numpy", "--device", "cuda"],
        r"The 'numpy' implementation runs on the CPU only\. Got device='cuda'; use --device cpu, "
        r"or --impl autograd\|module for CUDA\.",
    ),
    (
        "unknown-device",
        {"device": "tpu"},
        ["--device", "tpu"],
        r"The 'device' parameter must be one of cpu, cuda, auto\. Got 'tpu' instead\.",
    ),
    (
        "unknown-dtype",
        {"dtype": "float16"},
        ["--dtype", "float16"],
        r"The 'dtype' parameter must be one of float32, float64\. Got 'float16' instead\.",
    ),
]
IDS = [case[0] for case in CASES]


def _fill(value, files):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return files[value[1:-1]]
    return value


def _assert_one_error_line(status, out, err, match):
    import re

    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("logreg: error: ")
    assert "Traceback" not in err
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize(("kwargs", "match"), [(c[1], c[3]) for c in CASES], ids=IDS)
def test_python_api_raises_logreg_error(kwargs, match, files):
    kwargs = {k: _fill(v, files) for k, v in kwargs.items()}
    with pytest.raises(LogregError, match=match):
        # Parameters fail on construction; files when the data is loaded.
        train(TrainConfig(epochs=kwargs.pop("epochs", 1), **kwargs))


@pytest.mark.parametrize(("argv", "match"), [(c[2], c[3]) for c in CASES], ids=IDS)
def test_cli_exits_2_with_one_line(argv, match, files, run_cli):
    argv = [_fill(a, files) for a in argv]
    _assert_one_error_line(*run_cli("train", "--epochs", "1", *argv), match)


def test_logreg_error_is_a_value_error():
    assert issubclass(LogregError, ValueError)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["train", "--lr", "fast"],
            r"argument --lr: invalid float value: 'fast' \(see 'logreg train --help'\)",
        ),
        (["train", "--epochs", "1.5"], r"argument --epochs: invalid int value: '1\.5'"),
        (["train", "--bogus"], r"unrecognized arguments: --bogus"),
        (["train", "--dataset", "iris", "--data", "x.csv"], r"not allowed with argument --dataset"),
        (["fly"], r"invalid choice: 'fly'"),
        ([], r"the following arguments are required: command"),
    ],
    ids=["not-a-float", "not-an-int", "unknown-flag", "dataset-and-data", "unknown-command", "no-command"],
)
def test_cli_usage_errors_exit_2_with_one_line(argv, match, run_cli):
    _assert_one_error_line(*run_cli(*argv), match)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the error cannot happen")
@pytest.mark.parametrize("impl", ["autograd", "module"])
def test_cuda_without_a_gpu(impl, run_cli):
    match = (
        r"Device 'cuda' was requested but torch\.cuda\.is_available\(\) is False on this machine\. "
        r"Use --device cpu \(or auto\)\."
    )
    with pytest.raises(LogregError, match=match):
        TrainConfig(impl=impl, device="cuda")
    _assert_one_error_line(*run_cli("train", "--impl", impl, "--device", "cuda"), match)
    # 'auto' falls back to the CPU instead.
    assert TrainConfig(impl=impl, device="auto").resolved_device == "cpu"


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (
            np.zeros(10),
            np.arange(10) % 2,
            r"X must be a 2-D array \(n_samples, n_features\)\. Got shape \(10,\)",
        ),
        (np.zeros((10, 0)), np.arange(10) % 2, r"X has no features \(0 columns\)"),
        (np.array([["a", "b"]] * 10), np.arange(10) % 2, r"X must be numeric\. Got dtype <U1"),
        (np.zeros((10, 2)), np.arange(9) % 2, r"X has 10 rows but y has 9 labels"),
        (np.zeros((10, 2)), np.zeros((10, 2)), r"Labels must be one-dimensional\. Got shape \(10, 2\)"),
    ],
    ids=["1-d", "no-columns", "strings", "length-mismatch", "2-d-labels"],
)
def test_make_split_rejects_bad_arrays(X, y, match):
    with pytest.raises(LogregError, match=match):
        make_split(X, y)


def test_a_bug_keeps_its_traceback(monkeypatch, run_cli):
    # Only LogregError becomes a one-line message; anything else is a bug and must surface.
    import importlib

    def broken(config, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(importlib.import_module("logreg.train"), "train", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli("train", "--epochs", "1")


@pytest.mark.slow
def test_real_process_exits_2_without_traceback(tmp_path, repo_root):
    proc = subprocess.run(
        [sys.executable, "-m", "logreg", "train", "--dataset", "mnist"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("logreg: error: Unknown dataset 'mnist'. Available datasets: hours")


# ---------------------------------------------------------------- wrong answers given silently


def _split_counts(result) -> tuple[int, int, int]:
    s = result.split
    return len(s.y_train), len(s.y_val), len(s.y_test)


@pytest.mark.parametrize("source", ["registry", "file"])
def test_every_split_field_is_used_and_recorded(source, tmp_path):
    # test_size, val_size, standardize, dtype and seed reach the data of a registry dataset and
    # of a file alike, and the JSON records what was done (registry datasets ignored all of them).
    if source == "registry":
        base = {"dataset": "breast_cancer"}
    else:
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer()
        df = pd.DataFrame(d.data[:, :5], columns=[f"f{i}" for i in range(5)]).assign(label=d.target)
        df.to_csv(tmp_path / "bc.csv", index=False)
        base = {"data": str(tmp_path / "bc.csv"), "target": "label"}
    one = {"epochs": 1, **base}
    default = train(TrainConfig(**one))
    n = default.split.n_samples
    assert _split_counts(default)[2] == pytest.approx(0.25 * n, abs=2)
    small_test = train(TrainConfig(**one, test_size=0.5))
    assert _split_counts(small_test)[2] == pytest.approx(0.5 * n, abs=2)
    assert small_test.to_dict()["dataset"]["n_test"] == _split_counts(small_test)[2]
    big_val = train(TrainConfig(**one, val_size=0.5))
    assert _split_counts(big_val)[1] == pytest.approx(0.5 * 0.75 * n, abs=2)
    raw = train(TrainConfig(**one, standardize=False))
    assert np.abs(raw.split.X_train.mean(axis=0)).max() > 1  # the raw features: not centred
    assert np.abs(default.split.X_train.mean(axis=0)).max() < 1e-4
    assert raw.metrics["train_loss"] != default.metrics["train_loss"]
    assert train(TrainConfig(**one, dtype="float64")).split.X_train.dtype == np.float64
    reseeded = train(TrainConfig(**one, seed=1))
    assert not np.array_equal(reseeded.split.metadata["test_index"], default.split.metadata["test_index"])


def test_cli_no_standardize_and_test_size_reach_a_builtin_dataset(run_cli):
    import json

    def run(*args):
        status, out, err = run_cli("train", "--dataset", "iris", "--epochs", "5", "--json", *args)
        assert status == 0, err
        return json.loads(out)

    plain, raw, half = run(), run("--no-standardize"), run("--test-size", "0.5")
    assert raw["config"]["standardize"] is False
    assert raw["metrics"]["train_loss"] != plain["metrics"]["train_loss"]
    assert (half["dataset"]["n_test"], plain["dataset"]["n_test"]) == (50, 24)


@pytest.mark.parametrize(
    ("header", "repeated"), [("y,f1,f2,y", "y"), ("y,f1,f1,f2", "f1")], ids=["target", "feature"]
)
def test_repeated_column_names_are_refused(header, repeated, tmp_path, run_cli):
    # pandas renames a second 'y' to 'y.1', which then trained as a feature: accuracy 1.0.
    rows = [f"{i % 2},{i},{i * 2 % 7},{i % 2}" for i in range(40)]
    path = tmp_path / "dup.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    match = rf"Repeated column names in dup\.csv: {repeated}\. Each column needs its own name"
    with pytest.raises(LogregError, match=match):
        train(TrainConfig(data=str(path), target="y", epochs=1))
    _assert_one_error_line(*run_cli("train", "--data", path, "--target", "y", "--epochs", "1"), match)


def test_repeated_column_names_in_parquet_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(np.arange(20) % 2), pa.array(np.arange(20.0)), pa.array(np.arange(20) % 2)]
    pq.write_table(pa.Table.from_arrays(columns, names=["y", "f", "y"]), tmp_path / "dup.parquet")
    with pytest.raises(LogregError, match=r"Repeated column names in dup\.parquet: y\."):
        train(TrainConfig(data=str(tmp_path / "dup.parquet"), target="y", epochs=1))


def test_fractional_and_continuous_targets_for_a_classifier(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    half = tmp_path / "half.csv"
    pd.DataFrame({"f": rng.normal(size=30), "y": np.tile([0, 0.5, 1], 10)}).to_csv(half, index=False)
    cont = tmp_path / "cont.csv"
    pd.DataFrame({"f": rng.normal(size=200), "y": rng.normal(size=200)}).to_csv(cont, index=False)
    match = r"The target column 'y' of {} holds numbers that are not whole \(e\.g\. .*\): a classifier "
    fix = r".*Use --model linear for a numeric target, or encode the classes"
    for path in (half, cont):
        with pytest.raises(LogregError, match=match.format(path.name) + fix):
            train(TrainConfig(data=str(path), target="y", epochs=1))
        _assert_one_error_line(*run_cli("train", "--data", path, "--target", "y"), match.format(path.name))
    # The same files train as regression targets.
    assert train(TrainConfig(data=str(cont), target="y", model="linear", epochs=2)).status == "completed"
    many = tmp_path / "ids.csv"
    pd.DataFrame({"f": rng.normal(size=40), "y": np.arange(40)}).to_csv(many, index=False)
    with pytest.raises(LogregError, match=r"has 40 distinct values in 40 rows: too many classes"):
        train(TrainConfig(data=str(many), target="y", epochs=1))


def test_label_strings_are_stripped(tmp_path):
    # ' pass' and 'pass' are one class, as pandas users expect (they were two).
    labels = ["pass", " pass", "fail ", "fail"] * 10
    path = tmp_path / "spaces.csv"
    pd.DataFrame({"f": np.arange(40.0) % 4, "y": labels}).to_csv(path, index=False)
    result = train(TrainConfig(data=str(path), target="y", epochs=1))
    assert result.split.class_names == ("fail", "pass")


# ---------------------------------------------------------------- special files, full disks


@pytest.fixture
def special(tmp_path):
    """A FIFO and a symlink to a directory (never anything under /dev), and an older model."""
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "folder")
    return tmp_path


@pytest.mark.parametrize(
    ("flag", "name", "match"),
    [
        (
            "--save-model",
            "pipe.png",
            r"--save-model '.*pipe\.png' is a FIFO \(named pipe\), not a regular file",
        ),
        (
            "--save-model",
            "link",
            r"--save-model '.*link' is a directory\. Pass a file name, e.g\. model\.pt\.",
        ),
        ("--plot", "pipe.png", r"--plot '.*pipe\.png' is a FIFO \(named pipe\), not a regular file"),
        ("--plot", "link", r"--plot '.*link\.png'|--plot '.*link' is a directory"),
    ],
    ids=["model-fifo", "model-symlink-to-dir", "plot-fifo", "plot-symlink-to-dir"],
)
def test_outputs_refuse_special_files(flag, name, match, special, run_cli):
    import stat

    before = {p.name: p.lstat().st_mode for p in special.iterdir()}
    status, out, err = run_cli("train", "--dataset", "hours", "--epochs", "2", flag, special / name)
    if flag == "--plot" and name == "link":
        # --plot appends .png to a name without it: link.png is a new regular file beside the link.
        assert status == 0, err
        assert stat.S_ISREG((special / "link.png").stat().st_mode)
    else:
        _assert_one_error_line(status, out, err, match)
    after = {p.name: p.lstat().st_mode for p in special.iterdir()}
    assert {k: after[k] for k in before} == before  # the FIFO is a FIFO, the link a link
    assert stat.S_ISFIFO((special / "pipe.png").lstat().st_mode)


def test_data_that_is_a_fifo_is_named_as_such(special, run_cli):
    _assert_one_error_line(
        *run_cli("train", "--data", special / "pipe.csv", "--target", "y"),
        r"--data '.*pipe\.csv' is a FIFO \(named pipe\), not a regular file\. Check the --data path\.",
    )


def _with_file_size_limit(args, cwd, limit=512):
    """Run `python -m logreg ARGS` where no file may grow past `limit` bytes: a full disk, really
    (writes fail with EFBIG, as they would with ENOSPC), without touching any device."""
    import resource
    import signal

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "logreg", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit_files,
    )


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--save-model", "--plot"])
def test_a_full_disk_after_training_is_one_line_and_keeps_the_old_file(flag, tmp_path):
    old = tmp_path / ("out.png" if flag == "--plot" else "out.pt")
    old.write_bytes(b"the previous file")
    r = _with_file_size_limit(
        ["train", "--dataset", "hours", "--epochs", "3", "--quiet", flag, old], tmp_path
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(rf"Cannot write '{re.escape(str(old))}': File too large\. Nothing was changed", lines[0])
    assert old.read_bytes() == b"the previous file"
    assert [p.name for p in tmp_path.iterdir()] == [old.name]  # no temporary file left


def test_model_too_large_for_memory_is_refused_before_allocating(run_cli):
    match = (
        r"The mlp with hidden=10000000 needs about [\d.]+ GiB for its weights, optimizer state and "
        r"activations on blobs \(1200 rows x 2 features\); this machine has [\d.]+ GiB available\. "
        r"Use a smaller --hidden\."
    )
    _assert_one_error_line(*run_cli("train", "--model", "mlp", "--hidden", "10000000"), match)
    with pytest.raises(LogregError, match=match):
        train(TrainConfig(model="mlp", hidden=10_000_000))


def test_torch_threads_beyond_the_cores_are_capped_with_one_warning(run_cli):
    import json

    from logreg.timing import available_cores

    status, out, err = run_cli(
        "train", "--impl", "autograd", "--torch-threads", "10000", "--epochs", "2", "--json"
    )
    assert status == 0
    assert err.splitlines() == [
        f"logreg: warning: --torch-threads 10000 is more than the {available_cores()} cores this "
        f"process may use; using {available_cores()}."
    ]
    assert json.loads(out)["timings"]["torch_threads"] == available_cores()


def test_a_run_that_would_take_days_says_so_in_one_warning(monkeypatch):
    from logreg.errors import LogregWarning

    class Stop(Exception):
        pass

    def stop_at_5(epoch, metrics):
        if epoch >= 5:
            raise Stop

    with (
        pytest.warns(LogregWarning, match=r"This run \(1000000000000 epochs at .* us each\) will take about"),
        pytest.raises(Stop),
    ):
        train(TrainConfig(epochs=10**12), on_eval=stop_at_5)


def test_plot_without_png_suffix_names_the_file_written(tmp_path, run_cli):
    status, out, err = run_cli("train", "--dataset", "hours", "--epochs", "2", "--plot", tmp_path / "fig")
    assert status == 0, err
    assert out.splitlines()[-1].strip() == f"plot written to {tmp_path / 'fig.png'}"
    assert (tmp_path / "fig.png").is_file() and not (tmp_path / "fig").exists()


def test_error_lines_do_not_grow_with_the_input(tmp_path, run_cli):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"column_{i}" for i in range(100_000)) + "\n" + ",".join(["1"] * 100_000) + "\n")
    status, out, err = run_cli("train", "--data", wide, "--target", "label")
    _assert_one_error_line(status, out, err, r"Available columns: column_0, .* and 99995 more\.")
    assert len(err) < 600
    long_name = "x" * 1_000_000
    status, out, err = run_cli("train", "--dataset", long_name)
    _assert_one_error_line(status, out, err, r"Unknown dataset 'xxx+\.\.\.\. Available datasets")
    assert len(err) < 600


def test_weight_decay_inf_says_finite(run_cli):
    match = r"The 'weight_decay' parameter must be a finite float >= 0\. Got inf instead\."
    _assert_one_error_line(*run_cli("train", "--weight-decay", "inf"), match)
