"""Saved models: torch state dicts, loaded with weights_only=True, never arbitrary pickles."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from logreg import LogregError, TrainConfig, train
from logreg.cli import main
from logreg.model import load_model, save_model


@pytest.mark.parametrize("dataset", ["iris", "digits"])
def test_round_trip_predicts_like_the_result(tmp_path, dataset):
    result = train(TrainConfig(dataset=dataset, impl="numpy", epochs=30, dtype="float64"))
    model = load_model(save_model(result, tmp_path / "m.pt"))
    # Raw rows: undo the standardisation of the test part.
    X_raw = result.split.X_test * result.split.scale + result.split.mean
    np.testing.assert_allclose(
        model.predict_proba(X_raw), result.predict_proba(X_raw), rtol=1e-10, atol=1e-12
    )
    assert model.class_names == result.split.class_names
    # The nn.Module of the `module` implementation takes the same weights.
    net = model.to_module()
    with torch.no_grad():
        logits = net(torch.from_numpy(result.split.X_test.astype(np.float64))).numpy()
    pred = logits[:, 0] > 0 if logits.shape[1] == 1 else logits.argmax(axis=1)
    np.testing.assert_array_equal(pred.astype(int), model.predict_proba(X_raw).argmax(axis=1))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_with_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    torch.save({"format": "logreg-state-dict-v1", "payload": _Evil()}, bad)
    with pytest.raises(LogregError, match="not a logreg model file .*weights_only=True"):
        load_model(bad)
    assert not (tmp_path / "PWNED").exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(LogregError, match="not a logreg model file"):
        load_model(raw)
    assert not (tmp_path / "PWNED").exists()


def test_other_files_are_refused(tmp_path):
    with pytest.raises(LogregError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(LogregError, match="not a logreg model file"):
        load_model(tmp_path / "text.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(LogregError, match="format logreg-state-dict-v1 expected"):
        load_model(tmp_path / "other.pt")


def test_cli_save_model(tmp_path, capsys):
    path = tmp_path / "hours.pt"
    assert main(["train", "--dataset", "hours", "--save-model", str(path)]) == 0
    assert load_model(path).predict([[4.0]])[0] == "1"
    assert main(["train", "--dataset", "hours", "--save-model", str(tmp_path / "no" / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def _state(tmp_path, dataset="iris", **changes):
    """A real model file's state dict with some entries changed (a crafted file)."""
    path = save_model(train(TrainConfig(dataset=dataset, epochs=2)), tmp_path / "m.pt")
    state = torch.load(path, weights_only=True)
    state.update(changes)
    crafted = tmp_path / "crafted.pt"
    torch.save(state, crafted)
    return crafted


@pytest.mark.parametrize(
    ("dataset", "changes", "match"),
    [
        ("iris", {"class_names": []}, r"0 class names for 1 output\(s\) of a logistic model"),
        ("digits", {"class_names": ["a", "b"]}, r"2 class names for 10 output\(s\)"),
        ("iris", {"mean": torch.zeros(3)}, r"its weights, statistics and feature names do not fit together"),
        ("iris", {"linear.weight": torch.zeros(1, 7)}, r"do not fit together"),
        ("iris", {"feature_names": ["only one"]}, r"do not fit together"),
        ("iris", {"scale": torch.zeros(4)}, r"do not fit together"),
        ("iris", {"linear.bias": torch.tensor([float("nan")])}, r"'linear\.bias' holds NaN or infinite"),
        ("iris", {"mean": "not a tensor"}, r"'mean' is not a float tensor"),
        ("iris", {"model": "svm"}, r"unknown model 'svm'"),
    ],
    ids=["no-classes", "classes-vs-outputs", "mean-shape", "weight-shape", "feature-names", "zero-scale",
         "nan-bias", "not-a-tensor", "unknown-model"],
)  # fmt: skip
def test_crafted_files_are_refused_at_load_not_in_predict(tmp_path, dataset, changes, match):
    with pytest.raises(LogregError, match=r"is not a logreg model file \(.*" + match):
        load_model(_state(tmp_path, dataset, **changes))


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(LogregError, match=r"is a directory\. Pass a model file written by --save-model\."):
        load_model(tmp_path)
