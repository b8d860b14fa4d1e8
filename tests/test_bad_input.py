"""Every documented error: LogregError with a message that says what, what arrived and how to fix
it (Python API), and exit status 2 with exactly one line on stderr, no traceback (CLI)."""

from __future__ import annotations

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
        r"breast_cancer, digits, synthetic, line, diabetes \(or --data FILE --target COLUMN",
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
        r"The 'lr' parameter must be a float > 0\. Got nan instead\.",
    ),
    (
        "lr-inf",
        {"lr": float("inf")},
        ["--lr", "inf"],
        r"The 'lr' parameter must be a float > 0\. Got inf instead\.",
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
        r"A data file needs its label column: pass --target COLUMN\.",
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
            rf"File '.*data\.{ext}' is not CSV or Parquet \(its extension is '\.{ext}'\)\. "
            r"Use a \.csv or \.parquet file\.",
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
