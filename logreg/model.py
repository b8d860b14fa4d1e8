"""The one fitted-model object: weights, standardisation, classes; predictions; files on disk.

Models: logistic (one linear layer of logits), mlp (a hidden layer `hidden` = (W1, b1) and its
activation before that layer) and linear (least squares: predict gives numbers, no classes).

`train()` returns it in `Result.model`; `save_model` / `load_model` write and read it as a
torch state dict, always loaded with `weights_only=True`. A file holds the `nn.Linear` state
dict of the `module` implementation (`linear.weight` (k, d), `linear.bias` (k,)), the
standardisation statistics and
the class and feature names (and, for mlp, `hidden.weight`, `hidden.bias`, `activation`;
`model` names the model): tensors, strings and lists only, so loading never
unpickles arbitrary objects (`torch.load(..., weights_only=True)` refuses them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from logreg.errors import LogregError, first_line
from logreg.paths import check_input_file, check_output_file, write_atomic

FORMAT = "logreg-state-dict-v1"


@dataclass(frozen=True)
class FittedModel:
    """A fitted model: predicts from raw (unstandardised) feature rows."""

    W: np.ndarray  # (d, k), or (hidden, k) for mlp: the output layer
    b: np.ndarray  # (k,)
    mean: np.ndarray
    scale: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    model: str = "logistic"
    """logistic, mlp or linear."""
    hidden: tuple[np.ndarray, np.ndarray] | None = None
    """mlp: (W1 (d, h), b1 (h,)) of the hidden layer."""
    activation: str = "none"
    """mlp: the hidden layer's activation."""

    @classmethod
    def from_split(cls, W: np.ndarray, b: np.ndarray, split, hidden_layers=(), config=None) -> FittedModel:
        """Weights learnt on a Split, with its standardisation and names (and the config's model)."""
        extra = {}
        if config is not None:
            extra = {"model": config.model, "activation": config.activation if hidden_layers else "none"}
        if hidden_layers:
            extra["hidden"] = tuple(hidden_layers[0])
        return cls(W, b, split.mean, split.scale, split.class_names, split.feature_names, **extra)

    def decision_function(self, X_raw) -> np.ndarray:
        """(n, k) logits in float64: k = 1 for two classes, K otherwise (linear: predictions).

        Sparse rows (scipy) are scaled, never centred (a sparse model's mean is 0) and stay sparse."""
        if sparse.issparse(X_raw) and X_raw.ndim == 2 and not np.any(self.mean):
            if X_raw.shape[1] != len(self.mean):
                raise LogregError(f"Expected rows of {len(self.mean)} features. Got shape {X_raw.shape}.")
            X = sparse.csr_array(X_raw, dtype=np.float64) @ sparse.diags_array(1.0 / self.scale)
        else:
            X_raw = X_raw.toarray() if sparse.issparse(X_raw) else X_raw
            X = (np.asarray(X_raw, dtype=np.float64) - self.mean) / self.scale
            if X.ndim != 2 or X.shape[1] != len(self.mean):
                raise LogregError(f"Expected rows of {len(self.mean)} features. Got shape {np.shape(X_raw)}.")
        if self.hidden is not None:
            from logreg.impls.mlp_numpy import activate

            W1, b1 = self.hidden
            X = activate(X @ W1.astype(np.float64) + b1.astype(np.float64), self.activation)
        return X @ self.W.astype(np.float64) + self.b.astype(np.float64)

    def predict_proba(self, X_raw) -> np.ndarray:
        """(n, K) class probabilities."""
        if self.model == "linear":
            raise LogregError("A linear (regression) model has no class probabilities. Use predict().")
        Z = self.decision_function(X_raw)
        if self.W.shape[1] == 1:
            p = 0.5 * (1 + np.tanh(0.5 * Z[:, 0]))
            return np.column_stack([1 - p, p])
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)

    def predict(self, X_raw) -> np.ndarray:
        """The predicted class names (linear: the predicted numbers)."""
        if self.model == "linear":
            return self.decision_function(X_raw)[:, 0]
        return np.asarray(self.class_names)[self.predict_proba(X_raw).argmax(axis=1)]

    def to_module(self):
        """The `module` implementation's nn.Module with these weights (on standardised inputs)."""
        import torch

        from logreg.impls.module_impl import LogisticRegression

        if self.hidden is not None:
            from logreg.impls.mlp_module import mlp_network

            W1, b1 = self.hidden
            net = mlp_network(W1.shape[0], W1.shape[1], self.W.shape[1], self.activation).double()
            state = {"0.weight": W1.T, "0.bias": b1, "2.weight": self.W.T, "2.bias": self.b}
            net.load_state_dict(
                {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in state.items()}
            )
            return net
        net = LogisticRegression(*self.W.shape).double()
        net.load_state_dict(
            {
                "linear.weight": torch.from_numpy(self.W.T.copy()),
                "linear.bias": torch.from_numpy(self.b.copy()),
            }
        )
        return net

    def state_dict(self) -> dict:
        """The file content: tensors, strings and lists only."""
        import torch

        extra = {}
        if self.hidden is not None:
            extra = {
                "hidden.weight": torch.from_numpy(np.ascontiguousarray(self.hidden[0].T, dtype=np.float64)),
                "hidden.bias": torch.from_numpy(np.array(self.hidden[1], dtype=np.float64)),
                "activation": self.activation,
            }
        return {
            **extra,
            "model": self.model,
            "format": FORMAT,
            "linear.weight": torch.from_numpy(np.ascontiguousarray(self.W.T, dtype=np.float64)),
            "linear.bias": torch.from_numpy(np.array(self.b, dtype=np.float64)),
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float64)),
            "scale": torch.from_numpy(np.array(self.scale, dtype=np.float64)),
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
        }


def check_model_path(path: str | Path) -> Path:
    """Refuse a path a model cannot be written to (before any training is spent)."""
    check_output_file(path, "--save-model", "model.pt")
    return Path(path)


def save_model(fitted, path: str | Path) -> Path:
    """Write a FittedModel (or a training Result's model); whole to a temporary file, then renamed."""
    import torch

    model: FittedModel = getattr(fitted, "model", fitted)
    return write_atomic(path, lambda f: torch.save(model.state_dict(), f), "--save-model", "model.pt")


def _not_a_model(path, why: str) -> LogregError:
    return LogregError(
        f"'{path}' is not a logreg model file ({why}). Only load files written by --save-model."
    )


def _checked_state(state: dict, path) -> dict:
    """The tensors' shapes agree with each other and the names (a crafted file fails here, not in predict)."""
    import torch

    names = ("linear.weight", "linear.bias", "mean", "scale") + (
        ("hidden.weight", "hidden.bias") if "hidden.weight" in state else ()
    )
    for name in names:
        value = state.get(name)
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise _not_a_model(path, f"{name!r} is not a float tensor")
        if not torch.isfinite(value).all():
            raise _not_a_model(path, f"{name!r} holds NaN or infinite values")
    W, b, mean, scale = (state[n] for n in names[:4])
    names_given = state["feature_names"]
    d = -1
    if isinstance(names_given, list):  # a model of sparse data names no columns (d may be 10^6)
        d = len(names_given) if names_given else mean.shape[0]
    into = state["hidden.weight"].shape[0] if "hidden.weight" in state else d
    shapes_ok = (
        W.ndim == 2 and b.ndim == 1 and W.shape[0] == b.shape[0] >= 1
        and mean.shape == scale.shape == (d,) and d >= 1 and W.shape[1] == into
        and bool((scale > 0).all())
    )  # fmt: skip
    if "hidden.weight" in state:
        H, c = state["hidden.weight"], state["hidden.bias"]
        shapes_ok = shapes_ok and H.ndim == 2 and H.shape[1] == d and c.shape == (H.shape[0],)
    if not shapes_ok:
        raise _not_a_model(path, "its weights, statistics and feature names do not fit together")
    classes, model = state["class_names"], str(state.get("model", "logistic"))
    if model not in ("logistic", "mlp", "linear") or not isinstance(classes, list):
        raise _not_a_model(path, f"unknown model {model!r}")
    k = W.shape[0]
    expected = (0 if k == 1 else -1) if model == "linear" else (2 if k == 1 else k)
    if len(classes) != expected:
        raise _not_a_model(path, f"{len(classes)} class names for {k} output(s) of a {model} model")
    if "hidden.weight" in state and state.get("activation") not in ("relu", "leaky_relu", "tanh", "none"):
        raise _not_a_model(path, f"unknown activation {state.get('activation')!r}")
    return state


def load_model(path: str | Path) -> FittedModel:
    """Load a model file with weights_only=True (no arbitrary objects are unpickled)."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise LogregError(f"'{path}' is a directory. Pass a model file written by --save-model.")
    check_input_file(path, "The model file", "Pass a file written by --save-model.")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning precedes our error
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to parse an untrusted file is a bad file, not a bug
        raise _not_a_model(
            path, f"refused by torch.load(weights_only=True): {first_line(exc, 160)}"
        ) from None
    keys = {"format", "linear.weight", "linear.bias", "mean", "scale", "class_names", "feature_names"}
    if not isinstance(state, dict) or state.get("format") != FORMAT or not keys <= set(state):
        raise LogregError(f"'{path}' is not a logreg model file (format {FORMAT} expected).")
    _checked_state(state, path)
    hidden = None
    if "hidden.weight" in state:
        hidden = (state["hidden.weight"].numpy().T.copy(), state["hidden.bias"].numpy().copy())
    return FittedModel(
        model=str(state.get("model", "logistic")),
        hidden=hidden,
        activation=str(state.get("activation", "none")),
        W=state["linear.weight"].numpy().T.copy(),
        b=state["linear.bias"].numpy().copy(),
        mean=state["mean"].numpy().copy(),
        scale=state["scale"].numpy().copy(),
        class_names=tuple(str(c) for c in state["class_names"]),
        feature_names=tuple(str(c) for c in state["feature_names"]),
    )
