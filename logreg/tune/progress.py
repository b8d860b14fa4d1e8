"""The sweep's progress bar on stderr (tqdm): trials done, cells done, the current cell's best."""

from __future__ import annotations

import sys
import time

from logreg.timing import warn_if_long


class Progress:
    """tqdm bar: trials done, cells done, best value of the current cell."""

    def __init__(self, enabled: bool, total: int, n_cells: int):
        self.bar = None
        self.cells_done, self.n_cells = 0, n_cells
        self.total, self.done, self.started, self.warned = total, 0, time.monotonic(), False
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def cell(self, name: str, best) -> None:
        if self.bar is not None:
            best_s = "-" if best is None else f"{best:.4g}"
            self.bar.set_postfix_str(f"cells {self.cells_done}/{self.n_cells} | {name} | best {best_s}")

    def trial(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if not self.warned and self.done > 0:
            per_trial = (time.monotonic() - self.started) / self.done
            self.warned = warn_if_long(
                per_trial * (self.total - self.done),
                f"This sweep ({self.total - self.done} more trials at {per_trial:.3g} s each)",
                "Lower n_trials or add --workers; Ctrl-C stops it and the same command resumes.",
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
