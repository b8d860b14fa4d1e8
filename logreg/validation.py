"""Declared parameter constraints, checked by one function (scikit-learn's `_parameter_constraints`).

Every entry point (TrainConfig, experiment files, throughput options, sweep options, the
server, the CLI) declares what each parameter accepts and calls `check_params`, so every
error reads the same way:

    The 'lr' parameter must be a float > 0. Got -1.0 instead.
    The 'impls' parameter must be a list of numpy, autograd, module. Got 'jax' instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logreg.errors import LogregError, clip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Interval:
    """A number of `kind` (int or float) within [low, high]; open ends with `open_low`/`open_high`.

    A float must be finite; an int is accepted where a float is asked for.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def accepts(self, value: Any) -> bool:
        ok = _is_int(value) if self.kind is int else _is_number(value) and math.isfinite(value)
        if not ok:
            return False
        if self.low is not None and not (value > self.low if self.open_low else value >= self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self, plural: bool = False) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.open_low else '>='} {_number(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.open_high else '<='} {_number(self.high)}")
        what = self.kind.__name__ + ("s" if plural else "")
        if not plural:
            what = ("an " if what[0] in "aeiou" else "a ") + what
        return f"{what} {' and '.join(bounds)}".strip()


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self, plural: bool = False) -> str:
        return ("" if plural else "one of ") + ", ".join(map(str, self.values))


@dataclass(frozen=True)
class OfType:
    """An instance of `types` (e.g. bool, str)."""

    types: tuple[type, ...]
    name: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self, plural: bool = False) -> str:
        return self.name + ("s" if plural else "")


@dataclass(frozen=True)
class ListOf:
    """A non-empty list (or tuple) whose items all satisfy `item`."""

    item: Interval | Options | OfType

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, (list, tuple)) and len(value) > 0 and all(self.item.accepts(v) for v in value)
        )

    def describe(self, plural: bool = False) -> str:
        return "a list of " + self.item.describe(plural=True)


NONE = OfType((type(None),), "None")
Constraint = Interval | Options | OfType | ListOf


def _shown(constraint: Constraint, value: Any) -> str:
    """What arrived: for a list, the items that are wrong (or the whole value)."""
    if isinstance(constraint, ListOf) and isinstance(value, (list, tuple)) and value:
        bad = [v for v in value if not constraint.item.accepts(v)]
        if bad and isinstance(constraint.item, Options):
            return clip(", ".join(repr(v) for v in bad))
    return clip(repr(value))


def check_param(name: str, value: Any, constraints: Constraint | Sequence[Constraint]) -> None:
    """Raise LogregError unless `value` satisfies one of `constraints`."""
    options = constraints if isinstance(constraints, (list, tuple)) else (constraints,)
    if any(c.accepts(value) for c in options):
        return
    # None is the "not given" value of optional parameters: it goes without saying.
    wanted = " or ".join(c.describe() for c in options if c is not NONE) or NONE.describe()
    if isinstance(value, float) and not math.isfinite(value):  # inf passes ">= 0" but is no number to use
        wanted = wanted.replace("a float", "a finite float")
    raise LogregError(f"The {name!r} parameter must be {wanted}. Got {_shown(options[0], value)} instead.")


def check_params(constraints: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Check every declared parameter of `values` (scikit-learn's validate_parameter_constraints)."""
    for name, constraint in constraints.items():
        if name in values:
            check_param(name, values[name], constraint)


def check_env_seconds(name: str, text: str | None, default: int) -> int:
    """A whole number of seconds >= 1 from an environment variable (default when unset)."""
    text = (text or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise LogregError(
            f"The environment variable {name} must be a whole number of seconds >= 1. Got {text!r} instead."
        )
    return value
