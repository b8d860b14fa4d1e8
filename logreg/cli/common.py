"""What every command shares: one-line usage errors, exit statuses, list arguments, JSON output."""

from __future__ import annotations

import argparse
import math

from logreg.errors import LogregError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2."""

    def error(self, message: str):
        raise LogregError(f"{message} (see '{self.prog} --help').")


def names(value: str) -> list[str]:
    """A comma-separated list of names: 'iris, digits' -> ['iris', 'digits']."""
    return [v.strip() for v in value.split(",") if v.strip()]


def whole_numbers(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers, 1e3 notation allowed."""
    try:
        return tuple(int(float(v)) if "e" in v.lower() else int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(  # argparse words it as one usage line (exit 2)
            f"expected a comma-separated list of whole numbers (e.g. 1e3,1e4,1e5); got {text!r}"
        ) from None


def json_safe(obj):
    """NaN as null and infinities as strings, recursively: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def torch_threads(text: str) -> int | str:
    """--torch-threads: a whole number, or 'auto' (the same as 0: chosen from the problem size)."""
    return "auto" if text.strip() == "auto" else int(text)
