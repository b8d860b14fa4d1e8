"""The sweep's progress bar on stderr (tqdm): trials done, cells done, the current cell's best.

A TrialObserver: it hears of every trial of this process; with workers, `advance` counts theirs.
Once the first trials have run, one warning line when the rest would take more than a day.
"""

from __future__ import annotations

import math
import sys
import time

from logreg.timing import warn_if_long


class Progress:
    """tqdm bar: trials done, cells done, best value of the current cell."""

    def __init__(self, enabled: bool, total: int, n_cells: int, minimize: bool = True):
        self.bar = None
        self.cells_done, self.n_cells, self.minimize = 0, n_cells, minimize
        self.total, self.done, self.started, self.warned = total, 0, time.monotonic(), False
        self.name, self.best = "", None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def start_cell(self, name: str) -> None:
        self.name, self.best = name, None
        self._show()

    def cell_done(self, name: str) -> None:
        self.cells_done += 1
        self.name = name
        self._show()

    def trial_ended(self, outcome) -> None:
        value = outcome.value if outcome.state == "COMPLETE" else None
        if value is not None and math.isfinite(value) and (self.best is None or self._better(value)):
            self.best = value
        self.advance(1, self.name)

    def _better(self, value: float) -> bool:
        return value < self.best if self.minimize else value > self.best

    def advance(self, n: int, name: str) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        self.name = name
        self._show()
        if not self.warned and self.done > 0:
            per_trial = (time.monotonic() - self.started) / self.done
            self.warned = warn_if_long(
                per_trial * (self.total - self.done),
                f"This sweep ({self.total - self.done} more trials at {per_trial:.3g} s each)",
                "Lower n_trials or add --workers; Ctrl-C stops it and the same command resumes.",
            )

    def _show(self) -> None:
        if self.bar is not None:
            best = "-" if self.best is None else f"{self.best:.4g}"
            self.bar.set_postfix_str(f"cells {self.cells_done}/{self.n_cells} | {self.name} | best {best}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
