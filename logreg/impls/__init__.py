"""The three implementations behind one interface (impls.base.Implementation).

Choosing one is a dict lookup in IMPLS (models logistic and linear: one linear layer) or
MLP_IMPLS (model mlp: one hidden layer); torch is imported only by the torch ones.
"""

from __future__ import annotations

from collections.abc import Callable

from logreg.impls.base import Data, Implementation, batches, block_rows, head_of


def _numpy() -> type[Implementation]:
    from logreg.impls.numpy_impl import Model

    return Model


def _autograd() -> type[Implementation]:
    from logreg.impls.autograd_impl import Model

    return Model


def _module() -> type[Implementation]:
    from logreg.impls.module_impl import Model

    return Model


IMPLS: dict[str, Callable[[], type[Implementation]]] = {
    "numpy": _numpy,
    "autograd": _autograd,
    "module": _module,
}


def _mlp_numpy() -> type[Implementation]:
    from logreg.impls.mlp_numpy import Model

    return Model


def _mlp_autograd() -> type[Implementation]:
    from logreg.impls.mlp_autograd import Model

    return Model


def _mlp_module() -> type[Implementation]:
    from logreg.impls.mlp_module import Model

    return Model


MLP_IMPLS: dict[str, Callable[[], type[Implementation]]] = {
    "numpy": _mlp_numpy,
    "autograd": _mlp_autograd,
    "module": _mlp_module,
}


def make_model(config, W0, b0, device: str) -> Implementation:
    """The implementation `config.impl` names, initialised with (W0, b0) on `device`."""
    return IMPLS[config.impl]()(config, W0, b0, device)


def make_network(config, layers, device: str) -> Implementation:
    """The model `config.model` names in implementation `config.impl`: layers [(W, b), ...]."""
    if config.model == "mlp":
        return MLP_IMPLS[config.impl]()(config, layers, device)
    ((W0, b0),) = layers
    return make_model(config, W0, b0, device)


__all__ = [
    "IMPLS",
    "MLP_IMPLS",
    "Data",
    "Implementation",
    "batches",
    "block_rows",
    "head_of",
    "make_model",
    "make_network",
]
