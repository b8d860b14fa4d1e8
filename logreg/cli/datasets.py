"""`logreg datasets` (the built-in datasets and LIBSVM's) and `logreg datasets fetch NAME ...`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the built-in datasets and LIBSVM's; fetch LIBSVM's",
        usage="%(prog)s [-h] [--json]\n       %(prog)s fetch NAME [NAME ...]",
    )
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    p.set_defaults(func=cmd_datasets)
    actions = p.add_subparsers(dest="datasets_command", title="actions")
    f = actions.add_parser(
        "fetch",
        prog="logreg datasets fetch",
        help="download LIBSVM datasets into the local cache",
        description="Download LIBSVM binary-classification datasets into the local cache "
        "($LOGREG_DATA_HOME/libsvm, else ~/.cache/logreg/libsvm), each file checked and its "
        "sha256 recorded; files already there are not downloaded again.",
    )
    f.add_argument("names", nargs="+", metavar="NAME", help="a LIBSVM name, e.g. a9a or rcv1.binary")
    f.set_defaults(func=cmd_fetch)


def cmd_datasets(args) -> int:
    from logreg.data import describe_datasets
    from logreg.data.libsvm import data_home, describe_libsvm

    rows, libsvm = describe_datasets(), describe_libsvm()
    if args.json:
        print(json.dumps(rows + libsvm))
        return 0
    print(f"{'name':15s} {'shape':28s} {'classes':>7s}  source")
    for r in rows:
        classes = "-" if r["task"] == "regression" else str(r["n_classes"])
        print(f"{r['name']:15s} {r['shape']:28s} {classes:>7s}  {r['source']}")
    print("Your own data: logreg train --data FILE.csv|FILE.parquet --target COLUMN")
    print()
    print(f"LIBSVM binary datasets (logreg datasets fetch NAME; cache {data_home()}):")
    print(f"{'name':15s} {'shape':28s} {'fetched':>7s}  files (rows)")
    for r in libsvm:
        files = ", ".join(f"{f} ({n})" for f, n in zip(r["files"], (r["n_train"], r["n_test"]), strict=False))
        fetched = "yes" if r["fetched"] else "no"
        print(f"{r['name']:15s} {r['shape']:28s} {fetched:>7s}  {files}")
    return 0


class _Progress:
    """Bytes so far on one stderr line per file, on a terminal only."""

    def __init__(self):
        self.tty = sys.stderr.isatty()

    def __call__(self, file: str, done: int, total: int | None) -> None:
        if self.tty:
            of = f" of {total / 1e6:.1f}" if total else ""
            end = "\n" if done == total else ""
            print(f"\r{file}: {done / 1e6:.1f}{of} MB", end=end, file=sys.stderr, flush=True)


def _signature(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of a cache file, None when absent: a download replaces it by a new inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def cmd_fetch(args) -> int:
    from logreg.data.libsvm import data_home, fetch, libsvm_info

    infos = [libsvm_info(name) for name in dict.fromkeys(args.names)]  # unknown names before any download
    progress = _Progress()
    for info in infos:
        before = {f: _signature(data_home() / f) for f, _ in info.parts}
        for path in fetch(info.name, progress=progress):
            state = "already there" if before[path.name] == _signature(path) else "downloaded"
            print(f"{info.name}: {path} ({path.stat().st_size} bytes, {state})")
    return 0
