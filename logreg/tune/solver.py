"""F* solved in a helper process while the trial trains, so a sweep's cost per trial stays put.

A sweep searches weight_decay, so nearly every trial has an objective of its own and an F* of its
own (logreg.optimum; up to ~0.1 s for softmax on digits). The trial process hands the solve to
one helper process (forked once, on first use) and asks for the answer only after its last
epoch: on a machine with a core to spare the solve costs the trial nothing. Like the MLflow
writer, the helper ignores Ctrl-C (the sweep decides how to stop) and exits when its parent dies.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable

from logreg.optimum import Optimum, cached_optimum, exact_optimum, optimum_for, remember, solve_args


def _solver_loop(jobs, answers, parent_pid: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the parent died (e.g. SIGKILL)
            continue
        if job is None:
            return
        number, args = job
        try:
            answers.put((number, exact_optimum(*args)))
        except Exception as exc:  # noqa: BLE001 - re-raised in the trial process
            answers.put((number, exc))


class BackgroundOptimum:
    """`submit(config, split)` -> F* now (cached, or None for mlp) or a function that waits for it."""

    def __init__(self) -> None:
        self._proc = None
        self._jobs = self._answers = None
        self._next = 0
        self._done: dict[int, object] = {}

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

    def submit(self, config, split) -> Optimum | None | Callable[[], Optimum | None]:
        if config.model == "mlp":
            return None  # not convex: no F*
        found, value = cached_optimum(config, split)
        if found:
            return value
        if not self._start():
            return optimum_for(config, split)
        number, self._next = self._next, self._next + 1
        self._jobs.put((number, solve_args(config, split)))

        def answer() -> Optimum | None:
            while number not in self._done:
                try:
                    got, value = self._answers.get(timeout=1.0)
                except queue.Empty:
                    if not self._proc.is_alive():  # the helper died: solve here instead
                        return optimum_for(config, split)
                    continue
                self._done[got] = value
            value = self._done.pop(number)
            if isinstance(value, Exception):
                raise value
            return remember(config, split, value)

        return answer

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._jobs.put(None)
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.terminate()
        self._proc = None
