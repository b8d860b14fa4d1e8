"""Optuna: the only module that imports optuna.

One study per cell (dataset x impl x optimizer x device), named
`<experiment>/<dataset>/<impl>/<optimizer>/<device>`. Each trial is one
`train(config)`; its MLflow child run is written by the Tracker.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logreg.config import TrainConfig
from logreg.errors import LogregError, first_line
from logreg.experiment import Experiment

DEFAULT_STORAGE = "optuna-journal.log"  # in the working directory, git-ignored
HEARTBEAT_INTERVAL = 10  # seconds (RDB storages only); env LOGREG_HEARTBEAT_INTERVAL overrides
GRACE_PERIOD = 30  # a RUNNING trial with no heartbeat for this long is stale; env LOGREG_GRACE_PERIOD


def _env_seconds(name: str, default: int) -> int:
    """A whole number of seconds >= 1 from the environment (tests shorten the heartbeat)."""
    text = os.environ.get(name, "").strip()
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


@contextlib.contextmanager
def storage_errors(storage):
    """Turn a lost Optuna database (server down, connection dropped) into one clear LogregError."""
    try:
        yield
    except LogregError:
        raise
    except Exception as exc:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        # Optuna may replace the storage error while handling it (an AssertionError in its
        # trial post-processing when the final state cannot be read back): look down the chain.
        cause: BaseException | None = exc
        for _ in range(6):
            if cause is None or isinstance(cause, (SQLAlchemyError, StorageInternalError, OSError)):
                break
            cause = cause.__cause__ or cause.__context__
        if cause is None or not isinstance(cause, (SQLAlchemyError, StorageInternalError, OSError)):
            raise
        exc = cause
        from logreg.tracking import mask_uri

        if isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
            exc = exc.__cause__  # Optuna's wrapper says only "an exception is raised during the commit"

        backend = getattr(storage, "_backend", storage)  # create_study's cache wraps RDBStorage
        url = getattr(getattr(backend, "engine", None), "url", None)
        where = mask_uri(url.render_as_string(hide_password=False)) if url is not None else "storage"
        first = first_line(exc)
        raise LogregError(
            f"Lost the Optuna storage {where}: {mask_uri(first)[:200]}. Completed trials are kept; "
            "check that the database is reachable, then re-run to resume."
        ) from None


def _optuna():
    import optuna

    # Failed and interrupted trials are recorded (user attr fail_reason, MLflow tag
    # logreg.error); Optuna's own warnings would print their tracebacks again.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: str | None):
    """An Optuna storage for `url`: a path means a journal file; a URL an RDB storage.

    RDB storages (SQLite, PostgreSQL, MySQL) get heartbeats, so a trial whose
    worker died is marked failed and retried. Opening one creates its schema:
    do it once before any worker starts.
    """
    optuna = _optuna()
    url = url or DEFAULT_STORAGE
    if url == ":memory:":  # nothing kept: for benchmarks and throwaway runs
        return optuna.storages.InMemoryStorage()
    if "://" not in url:
        from optuna.storages.journal import JournalStorage

        try:
            return JournalStorage(_journal_backend(url))
        except OSError as exc:
            raise LogregError(
                f"Cannot open the Optuna journal file {url!r}: {exc.strerror}. Check the --storage path."
            ) from None
    from logreg.tracking import mask_uri

    heartbeat = _env_seconds("LOGREG_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL)
    grace = _env_seconds("LOGREG_GRACE_PERIOD", GRACE_PERIOD)
    _quiet_heartbeat_thread()
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=_engine_kwargs(url),
            heartbeat_interval=heartbeat,
            grace_period=grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
        )
    except Exception as exc:  # sqlalchemy errors: unreachable server, bad URL, missing driver
        first = first_line(exc)
        raise LogregError(
            f"Cannot open the Optuna storage {mask_uri(url)}: {mask_uri(first)[:200]}. "
            "Check --storage (is the database server running?)."
        ) from None


def _quiet_heartbeat_thread() -> None:
    """A lost database kills Optuna's heartbeat thread with a traceback on stderr; keep it quiet.

    The trial's own next write fails too, and storage_errors reports that as one line.
    """
    import threading

    previous = threading.excepthook
    if getattr(previous, "logreg_heartbeat", False):
        return

    def hook(args) -> None:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        lost = isinstance(args.exc_value, (SQLAlchemyError, StorageInternalError))
        if lost and "_record_heartbeat" in (getattr(args.thread, "name", "") or ""):
            return
        previous(args)

    hook.logreg_heartbeat = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _journal_backend(path: str):
    """Optuna's journal file, appended under its lock but without an fsync per append.

    Optuna fsyncs every record (one per reported value, parameter and state
    change): about 3 ms each on these machines, most of a trial's storage cost.
    Without it a record survives the death of any process (it is in the OS page
    cache) but not a power loss or OS crash, which a local experiment store can
    afford; use an RDB storage URL for more.
    """
    import json
    import os

    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class NoFsyncJournalFileBackend(JournalFileBackend):
        def append_logs(self, logs):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:  # noqa: SLF001
                f.write(text.encode("utf-8"))

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return NoFsyncJournalFileBackend(path)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes write.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def _cell_seed(exp: Experiment, study_name: str) -> int:
    # Stable across runs and processes (unlike hash()), different per cell.
    return (exp.seed * 1_000_003 + zlib.crc32(study_name.encode())) % 2**31


def make_sampler(exp: Experiment, study_name: str):
    optuna = _optuna()
    seed = _cell_seed(exp, study_name)
    if exp.sampler["name"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=exp.sampler.get("n_startup_trials", 5))


def make_pruner(exp: Experiment):
    optuna = _optuna()
    p = exp.pruner
    if p["name"] == "none":
        return optuna.pruners.NopPruner()
    if p["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.get("min_resource", exp.eval_every),
            max_resource=exp.epochs,
            reduction_factor=p.get("reduction_factor", 3),
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.get("n_startup_trials", 4), n_warmup_steps=p.get("n_warmup_steps", 10)
    )


def open_study(exp: Experiment, cell, storage):
    """Create the cell's study, or load it to resume (load_if_exists)."""
    optuna = _optuna()
    name = exp.study_name(cell)
    with storage_errors(storage):
        return optuna.create_study(
            storage=storage,
            study_name=name,
            direction=exp.direction,
            sampler=make_sampler(exp, name),
            pruner=make_pruner(exp),
            load_if_exists=True,
        )


def suggest_config(trial, exp: Experiment, cell) -> TrainConfig:
    """The TrainConfig of a trial: the cell, the experiment's settings and the sampled values."""
    dataset, impl, optimizer, device = cell
    space = exp.search_space(optimizer)
    kw: dict[str, Any] = {"lr": trial.suggest_float("lr", *space["lr"], log=True)}
    if optimizer == "momentum":
        kw["momentum"] = trial.suggest_float("momentum", *space.get("momentum", [0.9, 0.9]))
        if "nesterov" in space:
            kw["nesterov"] = trial.suggest_categorical("nesterov", space["nesterov"])
    if optimizer == "adam" and ("beta1" in space or "beta2" in space):
        kw["betas"] = (
            trial.suggest_float("beta1", *space.get("beta1", [0.9, 0.9])),
            trial.suggest_float("beta2", *space.get("beta2", [0.999, 0.999])),
        )
    if "weight_decay" in space:
        kw["weight_decay"] = trial.suggest_float("weight_decay", *space["weight_decay"], log=True)
    if "batch_size" in space:
        choice = trial.suggest_categorical("batch_size", space["batch_size"])
        kw["batch_size"] = None if choice == "full" else choice
    kw["epochs"] = trial.suggest_int("epochs", *space["epochs"]) if "epochs" in space else exp.epochs
    return TrainConfig(
        dataset=dataset,
        impl=impl,
        optimizer=optimizer,
        device=device,
        dtype=exp.dtype,
        seed=exp.seed,
        eval_every=exp.eval_every,
        **kw,
    )


def finished_states():
    optuna = _optuna()
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def count_finished(study) -> int:
    """Trials that count towards n_trials: complete, pruned, or failed by divergence.

    Trials that crashed or were interrupted do not count: a re-run retries them.
    """
    optuna = _optuna()
    n = 0
    with storage_errors(study._storage):  # noqa: SLF001
        trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state in finished_states() or (
            t.state == optuna.trial.TrialState.FAIL
            and str(t.user_attrs.get("fail_reason", "")).startswith("diverged")
        ):
            n += 1
    return n


@dataclass
class TrialOutcome:
    """What one trial gave, for progress reporting."""

    number: int
    state: str
    value: float | None


def run_cell(
    exp: Experiment,
    cell,
    study,
    objective_hooks: dict[str, Callable],
    *,
    max_errors: int | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Run trials of one study until it has n_trials finished trials; return how many ran.

    `objective_hooks` supplies: `start(trial, config)` -> handle, `report(handle, epoch, metrics)`,
    `finish(handle, trial, state, result, history, error)` and `done(outcome)`.
    A trial that raises ends FAILED (the error kept as `fail_reason`) and the cell goes on,
    up to `max_errors` (default n_trials) errors in this call.
    """
    optuna = _optuna()
    from logreg.train import train

    hooks = objective_hooks
    pruning = exp.pruner["name"] != "none"
    max_errors = exp.n_trials if max_errors is None else max_errors
    ran = errors = 0

    told: dict[str, Any] = {}  # what the objective gave Optuna, should Ctrl-C cut its tell short

    def objective(trial):
        told.clear()
        told["trial"] = trial
        config = suggest_config(trial, exp, cell)
        trial.set_user_attr("config", config.to_params())
        handle = hooks["start"](trial, config)
        history: list[tuple[int, dict]] = []

        def on_eval(epoch: int, metrics: dict[str, float]) -> None:
            history.append((epoch, metrics))
            if pruning:  # intermediate values serve the pruner; the curves are in MLflow anyway
                trial.report(metrics[exp.objective], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            result = train(config, on_eval=on_eval)
        except optuna.TrialPruned:
            hooks["finish"](handle, trial, "PRUNED", None, history, None)
            told["state"] = optuna.trial.TrialState.PRUNED
            raise
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason[:1000])
            state = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "FAIL"
            hooks["finish"](handle, trial, state, None, history, reason)
            raise
        if result.diverged:
            trial.set_user_attr("fail_reason", f"diverged: {result.message}")
            hooks["finish"](handle, trial, "DIVERGED", result, history, result.message)
            told["state"] = optuna.trial.TrialState.FAIL
            return float("nan")  # Optuna marks it FAIL; it never counts as best
        summary = {**result.metrics, **result.timings}
        trial.set_user_attr("result", {k: v for k, v in summary.items() if math.isfinite(v)})
        hooks["finish"](handle, trial, "COMPLETE", result, history, None)
        told["value"] = result.metrics[exp.objective]
        return told["value"]

    def callback(study, frozen):
        hooks["done"](TrialOutcome(frozen.number, frozen.state.name, frozen.value))

    while not stop() and count_finished(study) < exp.n_trials:
        with storage_errors(study._storage):  # noqa: SLF001
            before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[callback])
            except BaseException as exc:
                if not _interrupted(exc):
                    raise
                _finish_tell(study, told)
                raise KeyboardInterrupt from None
            failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        ran += 1
        if len(failed) > before and not str(failed[-1].user_attrs.get("fail_reason", "")).startswith(
            "diverged"
        ):
            errors += 1
            if errors >= max_errors:
                raise LogregError(
                    f"Study {study.study_name}: {errors} trials raised errors (last: "
                    f"{failed[-1].user_attrs.get('fail_reason', '?')}). Fix the cause and re-run to resume."
                )
    return ran


def _interrupted(exc: BaseException | None) -> bool:
    """Ctrl-C/SIGTERM, possibly replaced by an error Optuna raised while handling it."""
    for _ in range(6):
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def _finish_tell(study, told: dict[str, Any]) -> None:
    """Ctrl-C after the objective returned, inside Optuna's tell: record what the trial gave.

    Otherwise the trial would stay RUNNING (journal storages have no heartbeat) while its MLflow
    run already says how it ended.
    """
    optuna = _optuna()
    trial = told.get("trial")
    if trial is None:
        return
    with contextlib.suppress(Exception):
        if study._storage.get_trial(trial._trial_id).state != optuna.trial.TrialState.RUNNING:  # noqa: SLF001
            return
        if "value" in told:
            study.tell(trial, told["value"])
        else:
            study.tell(trial, state=told.get("state", optuna.trial.TrialState.FAIL))


def best_trial(study):
    """The best complete trial, or None (diverged and pruned trials never count)."""
    optuna = _optuna()
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    return study.best_trial


def study_frame(study) -> list[dict[str, Any]]:
    """Plain rows (number, state, value, params, intermediate values) for plots and tables."""
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": dict(t.params),
            "intermediate": dict(t.intermediate_values),
            "user_attrs": dict(t.user_attrs),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def param_importances(study) -> dict[str, float]:
    """Optuna's parameter importances ({} when too few complete trials to tell)."""
    optuna = _optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def fail_stale_trials(study) -> list[int]:
    """Mark trials of dead workers (no heartbeat) failed; return their numbers (RDB only)."""
    optuna = _optuna()
    from optuna.storages._heartbeat import is_heartbeat_enabled

    # create_study wraps an RDBStorage in a cache: ask for heartbeats, not for the class.
    if not is_heartbeat_enabled(study._storage):  # noqa: SLF001
        return []
    running = (optuna.trial.TrialState.RUNNING,)
    with storage_errors(study._storage):  # noqa: SLF001
        before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    return sorted(before - after)
