"""`logreg storage-proxy`: Optuna's gRPC storage proxy in front of an RDB, until Ctrl-C."""

from __future__ import annotations

import signal
import sys

from logreg.servers import check_bindable
from logreg.tracking import mask_uri
from logreg.tune.proxy import DEFAULT_HOST, DEFAULT_PORT, LOOPBACK_HOSTS, serve
from logreg.validation import Interval, check_param


def add_parser(sub) -> None:
    p = sub.add_parser(
        "storage-proxy", help="serve an Optuna RDB storage to many workers through Optuna's gRPC proxy"
    )
    p.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="the RDB storage to serve, e.g. postgresql://USER@HOST:5432/logreg_optuna",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"interface to bind (default: {DEFAULT_HOST}); 0.0.0.0 serves other machines "
        "(see docs/scale.md)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default: {DEFAULT_PORT})")
    p.set_defaults(func=cmd_storage_proxy)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_storage_proxy(args) -> int:
    check_param("port", args.port, Interval(int, 1, 65535))
    check_bindable(args.host, args.port)
    if args.host not in LOOPBACK_HOSTS:
        print(
            "logreg: note: the gRPC proxy has no authentication or TLS: anyone who reaches "
            f"{args.host}:{args.port} can read and change every study (see docs/scale.md).",
            file=sys.stderr,
        )
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host

    def ready() -> None:
        print(f"Optuna storage proxy for {mask_uri(args.storage)} on {args.host}:{args.port}")
        print(f"  --storage grpc://{host}:{args.port}")
        print("Ctrl-C stops the proxy.", flush=True)

    try:
        serve(args.storage, args.host, args.port, ready)
    except KeyboardInterrupt:
        return 0
    return 0
