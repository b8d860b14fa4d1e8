"""The sweep's headline, on a summary with known numbers worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from logreg.report.headline import as_markdown, headline, with_gaps, wrapped


@pytest.fixture
def summary():
    rows = [  # dataset, model, impl, optimizer, test accuracy (R^2), reference, fit seconds
        ("iris", "logistic", "numpy", "sgd", 0.95, 0.96, 0.004),
        ("iris", "logistic", "numpy", "adam", 0.96, 0.96, 0.002),
        ("iris", "logistic", "module", "adam", 0.962, 0.96, 0.010),
        ("digits", "logistic", "numpy", "adam", 0.90, 0.96, 0.030),
        ("digits", "logistic", "module", "sgd", 0.97, 0.96, 0.050),
        ("digits", "logistic", "autograd", "sgd", 0.966, 0.96, 0.040),
    ]
    cols = ["dataset", "model", "impl", "optimizer", "test_accuracy", "sklearn_test_accuracy", "fit_seconds"]
    return with_gaps(pd.DataFrame(rows, columns=cols))


def test_the_gaps_are_test_accuracy_minus_scikit_learns(summary):
    assert summary["gap_to_sklearn"].tolist() == pytest.approx([-0.01, 0.0, 0.002, -0.06, 0.01, 0.006])


def test_the_headline_gives_the_worst_and_median_gap_and_the_fastest_per_dataset(summary):
    first, gaps, fastest = headline(summary)
    assert first.startswith("6 cells on 2 datasets")
    # Sorted gaps -0.06, -0.01, 0, 0.002, 0.006, 0.01: median 0.001; 4 cells >= 0.
    worst = "worst -0.060 (digits/numpy/adam), median +0.001; 4 of 6 cells equal or better."
    assert gaps == f"  gap to scikit-learn: {worst}"
    # iris: best 0.962, within 0.005 also numpy/adam (0.96), the faster: 2 ms. digits: best
    # 0.97, within 0.005 autograd/sgd (0.966), the faster: 40 ms.
    assert fastest.endswith("iris numpy/adam (fit 2 ms), digits autograd/sgd (fit 40 ms).")


def test_linear_cells_use_r2_and_the_model_is_named():
    df = pd.DataFrame(
        {"dataset": ["diabetes"], "model": ["linear"], "impl": ["numpy"], "optimizer": ["sgd"],
         "test_r2": [0.45], "sklearn_test_r2": [0.47], "fit_seconds": [0.01]}
    )  # fmt: skip
    lines = headline(with_gaps(df))
    assert "worst -0.020 (diabetes/linear/numpy/sgd)" in lines[1] and "0 of 1 cells" in lines[1]


def test_no_reference_says_so():
    df = pd.DataFrame({"dataset": ["f.csv"], "impl": ["numpy"], "optimizer": ["sgd"], "fit_seconds": [1.0]})
    assert headline(with_gaps(df)) == ["No completed trial with a scikit-learn reference yet."]


def test_wrapped_for_a_terminal_and_listed_in_markdown(summary):
    lines = headline(summary)
    text = wrapped([lines[0], lines[1], "  fastest: " + "x " * 80])
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[-1].startswith("    x")  # a continuation is indented under its line
    md = as_markdown(lines)
    assert md.splitlines()[2].startswith("- gap to scikit-learn") and md.count("\n- ") == 2
