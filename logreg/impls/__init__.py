"""The three implementations behind one interface (impls.base.Implementation).

Choosing one is a dict lookup in IMPLS; torch is imported only by the torch ones.
"""

from __future__ import annotations

from collections.abc import Callable

from logreg.impls.base import Data, Implementation, batches, block_rows


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


def make_model(config, W0, b0, device: str) -> Implementation:
    """The implementation `config.impl` names, initialised with (W0, b0) on `device`."""
    return IMPLS[config.impl]()(config, W0, b0, device)


__all__ = ["IMPLS", "Data", "Implementation", "batches", "block_rows", "make_model"]
