"""Optuna's gRPC storage proxy: one server in front of an RDB storage, for many workers.

`logreg storage-proxy --storage postgresql://...` serves the database through
`optuna.storages.run_grpc_proxy_server` (with Optuna's in-process cache, `get_storage`), and
workers pass `--storage grpc://HOST:PORT`: they then hold no database connection of their own.

Optuna's proxy client has no heartbeats (Optuna 5 records them for RDBStorage only), so a worker
killed behind the proxy leaves its trial RUNNING. logreg's answer: any worker that opens the cell
or starts a trial fails the trials that have been RUNNING longer than a stated grace,
`LOGREG_PROXY_STALE_AFTER` seconds (default 1800: longer than any trial of ours, so a live
worker's trial is never failed); such a trial does not count towards n_trials, so the sweep runs
another one (with freshly sampled parameters: unlike RDB heartbeats, not a retry of the same ones).
"""

from __future__ import annotations

import os
import urllib.parse

from logreg.errors import LogregError
from logreg.tune.storage import fail_running_trials, import_optuna, open_storage
from logreg.validation import check_env_seconds

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000
PROXY_STALE_AFTER = 1800  # seconds; env LOGREG_PROXY_STALE_AFTER overrides
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_grpc_url(url: str) -> tuple[str, int]:
    """'grpc://HOST:PORT' -> (HOST, PORT), or a one-line error naming what is missing."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "grpc" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise LogregError(
            f"The gRPC storage URL must be grpc://HOST:PORT, e.g. grpc://127.0.0.1:{DEFAULT_PORT}. "
            f"Got {url!r} instead."
        )
    return parts.hostname, port


def connect_proxy(url: str, timeout: float = 5.0):
    """A GrpcStorageProxy client for `url`, checked to answer within `timeout` seconds."""
    optuna = import_optuna()
    host, port = parse_grpc_url(url)

    class LogregGrpcStorageProxy(optuna.storages.GrpcStorageProxy):
        """Optuna's client, with the URL it was opened with (for error messages)."""

        logreg_url = url

    proxy = LogregGrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=timeout)
    except ConnectionError:
        raise LogregError(
            f"Cannot reach the Optuna storage proxy {url} within {timeout:.0f} s. Start it with "
            f"`logreg storage-proxy --storage URL --port {port}` (or check --storage)."
        ) from None
    return proxy


def is_proxy(storage) -> bool:
    return hasattr(storage, "logreg_url")


def stale_after() -> int:
    """LOGREG_PROXY_STALE_AFTER (whole seconds >= 1), else PROXY_STALE_AFTER."""
    return check_env_seconds(
        "LOGREG_PROXY_STALE_AFTER", os.environ.get("LOGREG_PROXY_STALE_AFTER"), PROXY_STALE_AFTER
    )


def fail_long_running_trials(study, storage) -> list[int]:
    """Behind the proxy: fail the study's trials RUNNING for longer than stale_after(); their numbers."""
    return fail_running_trials(study, storage, stale_after())


def serve(storage_url: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, ready=lambda: None) -> None:
    """Serve an RDB storage through Optuna's gRPC proxy until interrupted (blocks).

    `ready()` is called once the storage is open, just before the server starts listening.
    """
    optuna = import_optuna()
    if "://" not in storage_url or storage_url.startswith("grpc:"):
        raise LogregError(
            "The gRPC proxy serves an RDB storage (postgresql://..., mysql://..., sqlite:///...), not "
            f"{storage_url!r}: Optuna's proxy refuses journal files. Pass --storage postgresql://USER@HOST/DB."
        )
    storage = optuna.storages.get_storage(open_storage(storage_url))  # with Optuna's cache
    ready()
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
