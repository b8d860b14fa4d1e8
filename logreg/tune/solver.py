"""F* for each trial, solved while the trial trains, so that its run is written once, with it.

A sweep searches weight_decay, so nearly every trial has an objective and an F* of its own
(logreg.optimum). `OptimumSolver.start(config, split)` is called when a trial starts and returns
a function the trial calls after its last epoch: a cached F* at once; a small problem
(logreg.optimum.cheap) solved then, in the trial's process (a binary Newton solve on breast_cancer takes
under 1 ms); a larger one (softmax on digits: ~40 ms) submitted at once to a pool of one helper
process (concurrent.futures, forked: it inherits nothing it could share wrongly, as it never
opens a store) and waited for, usually already done. A pruned or failed trial cancels its solve.
The helper keeps its own cache, so each new weight decay starts from the nearest one it solved.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from collections.abc import Callable

from logreg.optimum import Optimum, cached_optimum, cheap, optimum_for, remember, solve
from logreg.tracking import exit_with_parent
from logreg.train import Interrupted


def _start_helper() -> None:
    import signal

    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep decides how to stop, and stops us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    threadpool_limits(1)  # one BLAS thread: the helper shares the machine with the training process


def _solve(digest, X, y, n_classes, model, weight_decay) -> Optimum | None:
    return solve(digest, X, y, n_classes, model, weight_decay)


class OptimumSolver:
    """`start(config, split)` -> a function returning F* (None for the mlp: not convex)."""

    def __init__(self) -> None:
        self._pool: cf.ProcessPoolExecutor | None = None
        self._running: cf.Future | None = None

    def start(self, config, split, should_stop=lambda: False) -> Callable[[], Optimum | None]:
        """F* for the trial about to train; waiting for it stops (Interrupted) when should_stop()."""
        self.cancel()
        if config.model == "mlp":
            return lambda: None
        found, value = cached_optimum(config, split)
        if found:
            return lambda: value
        if cheap(split) or "fork" not in mp.get_all_start_methods():
            return lambda: optimum_for(config, split)
        if self._pool is None:
            fork = mp.get_context("fork")
            self._pool = cf.ProcessPoolExecutor(1, mp_context=fork, initializer=_start_helper)
        data = (
            split.digest,
            split.X_train,
            split.y_train,
            split.n_classes,
            config.model,
            config.weight_decay,
        )
        future = self._running = self._pool.submit(_solve, *data)

        def wait() -> Optimum | None:
            try:
                while not future.done():  # Ctrl-C / SIGTERM must not wait for a long solve
                    if should_stop():
                        future.cancel()
                        raise Interrupted("stopped while F* was solved")
                    cf.wait([future], timeout=0.1)
                found = future.result()
            except cf.process.BrokenProcessPool:  # the helper died: solve here instead
                return optimum_for(config, split)
            return remember(config, split, found)

        return wait

    def cancel(self) -> None:
        """Cancel the last solve if it has not started (its trial was pruned or failed)."""
        if self._running is not None:
            self._running.cancel()
            self._running = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
