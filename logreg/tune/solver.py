"""F* solved in a helper process while the trial trains, so a sweep's cost per trial stays put.

A sweep searches weight_decay, so nearly every trial has an objective of its own and an F* of its
own (logreg.optimum; up to ~0.1 s for softmax on digits). The trial process hands the solve to
one helper process (forked once, on first use) when the trial has completed (pruned and failed
trials need no F*), and never waits for it: the trial logs its train_objective, and its
suboptimality follows when the answer is in, while the next trials train
(tune.cell.CellTracking.log_suboptimality; at the latest when the cell ends). Like the MLflow
writer, the helper ignores Ctrl-C (the sweep decides how to stop) and exits when its parent dies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue

from logreg.optimum import Optimum, cached_optimum, optimum_for, remember, solve


def _solver_loop(jobs, answers, parent_pid: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group SIGTERM: the parent stops us
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the helper shares the machine with the training process it runs beside.
    threadpool_limits(1)
    data: dict[str, tuple] = {}  # (X, y, n_classes) by dataset digest: sent once, not with every job
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the parent died (e.g. SIGKILL)
            continue
        if job is None:
            return
        if job[0] == "data":
            data[job[1]] = job[2:]
            continue
        number, digest, model, weight_decay = job
        try:
            # Cached here too: each new weight decay starts from the nearest one this helper solved.
            answers.put((number, solve(digest, *data[digest], model, weight_decay)))
        except Exception as exc:  # noqa: BLE001 - re-raised in the trial process
            answers.put((number, exc))


INLINE_VALUES = 200_000
"""Below this many values in the solve (n x (d + 1) x outputs), F* is solved in the trial process
after its last epoch (a binary Newton solve on breast_cancer: under 1 ms) and logged with the
trial's own write; above it (softmax on digits: 7e5 values, ~40 ms), in the helper. A helper
answer costs the MLflow writer a second write per trial, which cost more than small solves."""


def solve_inline(split) -> bool:
    """Whether F* on this split is cheap enough to solve in the trial process (INLINE_VALUES)."""
    n, d = split.X_train.shape
    outputs = 1 if split.n_classes <= 2 else split.n_classes
    return n * (d + 1) * outputs <= INLINE_VALUES


class BackgroundOptimum:
    """`submit(config, split)` -> F* now (cached, or None for mlp) or a function that waits for it."""

    def __init__(self) -> None:
        self._proc = None
        self._jobs = self._answers = None
        self._next = 0
        self._done: dict[int, object] = {}
        self._sent: set[str] = set()  # digests whose rows the helper holds

    def _start(self) -> bool:
        if self._proc is not None:
            return self._proc.is_alive()
        if "fork" not in mp.get_all_start_methods():  # pragma: no cover - non-Linux: solve inline
            return False
        ctx = mp.get_context("fork")
        self._jobs, self._answers = ctx.Queue(), ctx.Queue()
        args = (self._jobs, self._answers, os.getpid())
        self._proc = ctx.Process(target=_solver_loop, name="logreg-optimum", daemon=True, args=args)
        self._proc.start()
        return True

    def submit(self, config, split) -> Optimum | None | Pending:
        if config.model == "mlp":
            return None  # not convex: no F*
        found, value = cached_optimum(config, split)
        if found:
            return value
        if not self._start():
            return optimum_for(config, split)
        number, self._next = self._next, self._next + 1
        if split.digest not in self._sent:
            self._jobs.put(("data", split.digest, split.X_train, split.y_train, split.n_classes))
            self._sent.add(split.digest)
        self._jobs.put((number, split.digest, config.model, config.weight_decay))
        return Pending(self, number, config, split)

    def answered(self, number: int) -> bool:
        """Whether job `number`'s answer is in (without waiting)."""
        while number not in self._done and self._collect(block=False):
            pass
        return number in self._done

    def wait(self, number: int, config, split) -> Optimum | None:
        """Job `number`'s F* (cached in this process); solved here if the helper died."""
        while number not in self._done:
            if not self._collect(block=True) and not self._proc.is_alive():
                return optimum_for(config, split)
        value = self._done.pop(number)
        if isinstance(value, Exception):
            raise value
        return remember(config, split, value)

    def _collect(self, block: bool) -> bool:
        """Take one answer from the helper into _done; False when none came (or it died)."""
        try:
            got, value = self._answers.get(timeout=1.0) if block else self._answers.get_nowait()
        except queue.Empty:
            return False
        self._done[got] = value
        return True

    def close(self) -> None:
        """Stop the helper (at most ~1 s: a sweep reads every answer before; after Ctrl-C none is needed)."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._jobs.put(None)
                self._proc.join(timeout=1)
                if self._proc.is_alive():
                    self._proc.terminate()
            # Never block this process's exit flushing what a stopped helper will not read.
            self._jobs.cancel_join_thread()
            self._answers.cancel_join_thread()
        self._proc = None


class Pending:
    """An F* being solved in the helper: `ready()` without waiting, `()` waits for it."""

    def __init__(self, solver: BackgroundOptimum, number: int, config, split) -> None:
        self.solver, self.number, self.config, self.split = solver, number, config, split

    def ready(self) -> bool:
        return self.solver.answered(self.number)

    def __call__(self) -> Optimum | None:
        return self.solver.wait(self.number, self.config, self.split)
