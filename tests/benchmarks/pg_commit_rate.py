"""How many small write transactions per second this PostgreSQL server commits (the scale model's
ceiling), measured with N client connections each inserting one row per transaction.

    python tests/benchmarks/pg_commit_rate.py [--clients 1,4,8] [--seconds 5]

Writes runs/scale/commit_rate.md (machine, command, figures); --out results/scale/commit_rate.md
is the committed one.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from logreg.tracking import cpu_name  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _connect(db: str):
    import psycopg2

    conn = psycopg2.connect(f"{POSTGRES}/{db}")
    conn.autocommit = False
    return conn


def rate(db: str, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = _connect(db)
        with conn.cursor() as cur:
            while time.monotonic() < stop:
                cur.execute("INSERT INTO t (v) VALUES (%s)", (i,))
                conn.commit()
                counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "scale" / "commit_rate.md")
    args = ap.parse_args()
    admin = _connect("postgres")
    admin.autocommit = True
    db = f"logreg_commit_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE DATABASE {db}")
    try:
        setup = _connect(db)
        setup.cursor().execute("CREATE TABLE t (id serial PRIMARY KEY, v int)")
        setup.commit()
        setup.close()
        rows = [(int(c), rate(db, int(c), args.seconds)) for c in args.clients.split(",")]
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()
    version = _connect("postgres").server_version
    lines = [
        "# PostgreSQL commit rate (one-row INSERT + COMMIT per transaction)\n",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, PostgreSQL {version // 10000}, default settings "
        f"(synchronous_commit on). 1-minute load average {os.getloadavg()[0]:.1f}. Made by "
        f"`python tests/benchmarks/pg_commit_rate.py {' '.join(sys.argv[1:])}`.\n",
        "| clients | commits/s |",
        "|---|---|",
        *[f"| {c} | {r:.0f} |" for c, r in rows],
    ]
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
