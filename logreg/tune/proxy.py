"""`logreg storage-proxy`: Optuna's gRPC storage proxy in front of an RDB storage, for many workers.

`optuna.storages.run_grpc_proxy_server` serves the database (with Optuna's in-process cache,
`get_storage`), and workers pass `--storage grpc://HOST:PORT`: they hold no database connection of
their own. Its client has no heartbeats: see tune.storage.ProxyStore for how a dead worker's
trial is failed.
"""

from __future__ import annotations

from logreg.errors import LogregError
from logreg.tune.optuna_lib import import_optuna
from logreg.tune.storage import DEFAULT_PROXY_PORT, open_storage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = DEFAULT_PROXY_PORT
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
    storage = optuna.storages.get_storage(open_storage(storage_url).optuna)  # with Optuna's cache
    ready()
    optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
