"""Optuna's journal file: appended under its lock without an fsync per record, checked on open.

Optuna fsyncs every record (one per reported value, parameter and state change): about 3 ms each
on these machines, most of a trial's storage cost. Without it a record survives the death of any
process (it is in the OS page cache) but not a power loss or OS crash, which a local experiment
store can afford; use an RDB storage URL for more.

On open, under the same lock: every line must be a journal record. A torn last record (a crash or
a full disk mid-write; Optuna would append after it and fail on every later read) is cut off, the
original kept beside the file, one warning line. Anything else is not a journal: one line, exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

from logreg.errors import LogregError, LogregWarning

RECORD_START = b'{"op_code"'


def journal_backend(path: str):
    """A checked JournalFileBackend for `path` (created if missing)."""
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class NoFsyncJournalFileBackend(JournalFileBackend):
        def append_logs(self, logs):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:  # noqa: SLF001
                f.write(text.encode("utf-8"))

    if os.path.exists(path) and not os.path.isfile(path):
        raise LogregError(
            f"The Optuna journal {path!r} is not a regular file. Pass a file path to --storage."
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    backend = NoFsyncJournalFileBackend(path)
    if os.path.exists(path) and os.path.getsize(path):
        with get_lock_file(backend._lock):  # noqa: SLF001 - no process appends while we read
            check_journal(path)
    return backend


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and "op_code" in record


def check_journal(path: str) -> None:
    """Every line a record; a torn last one cut off (backup kept); else LogregError."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if line.endswith(b"\n") and _is_record(line):
            offset += len(line)
            continue
        last = offset + len(line) == len(data)
        torn = last and (
            line.startswith(RECORD_START) or (offset > 0 and RECORD_START.startswith(line.rstrip()))
        )
        if not torn:
            raise LogregError(
                f"{path!r} is not an Optuna journal file: line {number} is not a journal record. Pass a "
                "journal path to --storage (a new file is created) or an RDB URL such as sqlite:///optuna.db."
            )
        _drop_torn_tail(path, offset, len(data) - offset)
        return


def _drop_torn_tail(path: str, offset: int, size: int) -> None:
    backup = f"{path}.torn-{time.strftime('%Y%m%d-%H%M%S')}"
    shutil.copy2(path, backup)
    os.truncate(path, offset)
    warnings.warn(
        f"The Optuna journal {path!r} ended in a torn record ({size} bytes, from a crash or a full disk "
        f"mid-write): dropped; every complete record is kept, the original is in {backup!r}.",
        LogregWarning,
        stacklevel=2,
    )
