"""The field's binary-classification datasets from LIBSVM's page, by name, in a local cache.

`fetch(name)` downloads each file of an entry into a temporary file beside its place, checks it
(it parses as svmlight with the published row count and at most the published feature count),
records its sha256 in `manifest.json` and only then renames it into place: an interrupted or bad
download leaves nothing behind. `load(name)` checks each file against its recorded sha256 before
reading it. Nothing here touches the network or the disk on import.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logreg.errors import LogregError, first_line

LIBSVM_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/"
TIMEOUT_S = 60
CHUNK = 1 << 20
MANIFEST = "manifest.json"

# progress(file name, bytes so far, Content-Length or None), after every chunk of a download.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class LibsvmInfo:
    """One LIBSVM dataset: its files on the page and the published counts."""

    name: str
    train_file: str
    test_file: str | None
    n_train: int
    n_test: int  # 0 when there is no test file
    n_features: int
    description: str

    @property
    def parts(self) -> tuple[tuple[str, int], ...]:
        """(file name, published row count) of each file: the train file, then the test file."""
        test = ((self.test_file, self.n_test),) if self.test_file else ()
        return ((self.train_file, self.n_train), *test)


_ENTRIES = (  # name, train file, test file, n_train, n_test, n_features, description
    ("a9a", "a9a", "a9a.t", 32_561, 16_281, 123, "UCI Adult: income > 50K, binarised census features"),
    ("w8a", "w8a", "w8a.t", 49_749, 14_951, 300, "Platt's web page categories, binary keyword features"),
    ("real-sim", "real-sim.bz2", None, 72_309, 0, 20_958, "SRAA Usenet posts: real vs simulated, tf-idf"),
    ("rcv1.binary", "rcv1_train.binary.bz2", "rcv1_test.binary.bz2", 20_242, 677_399, 47_236,
     "Reuters RCV1 news: CCAT and ECAT vs GCAT and MCAT, tf-idf"),
    ("news20.binary", "news20.binary.bz2", None, 19_996, 0, 1_355_191, "20 Newsgroups, two classes"),
    ("covtype.binary", "covtype.libsvm.binary.bz2", None, 581_012, 0, 54,
     "forest cover type: class 2 vs the rest, 54 cartographic features"),
)  # fmt: skip
LIBSVM: dict[str, LibsvmInfo] = {e[0]: LibsvmInfo(*e) for e in _ENTRIES}


def base_url() -> str:
    """$LOGREG_LIBSVM_URL, else LIBSVM's page, ending in '/'."""
    url = os.environ.get("LOGREG_LIBSVM_URL") or LIBSVM_URL
    return url if url.endswith("/") else url + "/"


def data_home() -> Path:
    """The LIBSVM cache: `libsvm/` in $LOGREG_DATA_HOME, else in $XDG_CACHE_HOME/logreg or
    ~/.cache/logreg."""
    home = os.environ.get("LOGREG_DATA_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(cache, "logreg")
    return Path(home) / "libsvm"


def libsvm_info(name: str) -> LibsvmInfo:
    """The registry entry of `name`; one line listing the known names for anything else."""
    if name not in LIBSVM:
        raise LogregError(f"Unknown LIBSVM dataset {name!r}. Known names: {', '.join(LIBSVM)}.")
    return LIBSVM[name]


def read_manifest() -> dict[str, dict]:
    """{file name: {"sha256", "bytes", "rows", "url"}} of the files fetched; {} when none (or unreadable)."""
    try:
        manifest = json.loads((data_home() / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _write_manifest(manifest: dict[str, dict]) -> None:
    from logreg.paths import write_text

    write_text(data_home() / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def is_fetched(name: str) -> bool:
    """Whether every file of `name` is in the cache with a recorded sha256 (`load` checks it)."""
    manifest = read_manifest()
    return all(f in manifest and (data_home() / f).is_file() for f, _ in libsvm_info(name).parts)


def describe_libsvm() -> list[dict]:
    """One row per LIBSVM entry, for `logreg datasets`."""
    return [
        {
            "name": d.name,
            "shape": f"{d.n_train + d.n_test} x {d.n_features}",
            "n_classes": 2,
            "task": "classification",
            "source": f"LIBSVM: {d.description}",
            "files": [f for f, _ in d.parts],
            "n_train": d.n_train,
            "n_test": d.n_test,
            "n_features": d.n_features,
            "fetched": is_fetched(d.name),
        }
        for d in LIBSVM.values()
    ]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _is_valid(path: Path, entry: dict | None) -> bool:
    return entry is not None and path.is_file() and _sha256(path) == entry.get("sha256")


def fetch(name: str, progress: Progress | None = None) -> list[Path]:
    """Download the files of `name` that are not in the cache yet (or whose sha256 no longer
    matches); return every file's path, the train file first."""
    from logreg.paths import check_output_dir

    info = libsvm_info(name)
    folder = check_output_dir(data_home(), "The data cache (LOGREG_DATA_HOME)")
    paths = []
    for file, rows in info.parts:
        path = folder / file
        if not _is_valid(path, read_manifest().get(file)):
            path.unlink(missing_ok=True)
            _fetch_file(info, file, rows, progress)
        paths.append(path)
    return paths


def _fetch_file(info: LibsvmInfo, file: str, rows: int, progress: Progress | None) -> None:
    """One file: download to a temporary file, check, record its sha256, rename into place."""
    from logreg.data.svmlight import COMPRESSIONS

    folder, url = data_home(), base_url() + file
    compression = Path(file).suffix if Path(file).suffix.lower() in COMPRESSIONS else ""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=f".part{compression}")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256 = _download(url, out, progress, info.name)
        _check_file(tmp, url, info, rows)
        manifest = read_manifest()
        manifest[file] = {"sha256": sha256, "bytes": size, "rows": rows, "url": url}
        _write_manifest(manifest)
        os.replace(tmp, folder / file)
    finally:
        tmp.unlink(missing_ok=True)


def _download(url: str, out, progress: Progress | None, name: str) -> tuple[int, str]:
    """Copy `url` into the open file `out`; (bytes, sha256). One line on any failure."""
    import http.client
    import urllib.error
    import urllib.request

    fix = f"Check the network or LOGREG_LIBSVM_URL, then run: logreg datasets fetch {name}"
    file, done, h = url.rsplit("/", 1)[-1], 0, hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while block := resp.read(CHUNK):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress is not None:
                    progress(file, done, total)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise LogregError(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}. {fix}") from None
    except urllib.error.URLError as exc:
        raise LogregError(f"Cannot reach {url}: {exc.reason}. {fix}") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = first_line(exc)
        raise LogregError(
            f"Downloading {url} stopped after {done} bytes ({reason}). Nothing was kept. {fix}"
        ) from None
    if total is not None and done != total:
        raise LogregError(f"Downloading {url} stopped after {done} of {total} bytes. Nothing was kept. {fix}")
    if done == 0:
        raise LogregError(f"{url} sent an empty file. {fix}")
    return done, h.hexdigest()


def _check_file(tmp: Path, url: str, info: LibsvmInfo, rows: int) -> None:
    """The downloaded file parses as svmlight, with the published rows and at most n_features columns."""
    from logreg.data.svmlight import read_svmlight

    fix = f"Nothing was kept; check LOGREG_LIBSVM_URL, then run: logreg datasets fetch {info.name}"
    try:
        X, _, _ = read_svmlight(tmp, n_features=info.n_features, task="classification")
    except LogregError as exc:
        # "File '<tmp>' is not a valid svmlight file at line 3: why. Fix or remove that line."
        why = str(exc).replace(f"File '{tmp}' ", "").split(". ")[0].rstrip(".")
        raise LogregError(f"{url} {why}. {fix}") from None
    if X.shape[0] != rows:
        raise LogregError(f"{url} has {X.shape[0]} rows where LIBSVM publishes {rows}. {fix}")


def _verified(info: LibsvmInfo) -> tuple[list[Path], dict[str, dict]]:
    """The cached files of `info`, each checked against its recorded sha256; a bad one is removed."""
    folder, manifest = data_home(), read_manifest()
    paths = [folder / f for f, _ in info.parts]
    if not all(p.is_file() for p in paths):
        raise LogregError(f"Dataset {info.name!r} is not fetched yet. Run: logreg datasets fetch {info.name}")
    for path in paths:
        entry = manifest.get(path.name)
        if entry is None or _sha256(path) != entry.get("sha256"):
            path.unlink(missing_ok=True)
            raise LogregError(
                f"The cached file '{path}' was corrupted (its sha256 is not the one recorded when it "
                f"was fetched) and has been removed. Run: logreg datasets fetch {info.name}"
            )
    return paths, manifest


def load(name: str):
    """(X, y, meta) of a fetched dataset: the train file's rows then the test file's, as one
    float64 CSR matrix with the published n_features columns; y the labels as in the files."""
    import numpy as np
    import scipy.sparse as sp

    from logreg.data.svmlight import read_svmlight

    info = libsvm_info(name)
    paths, manifest = _verified(info)
    parts = [read_svmlight(p, n_features=info.n_features, task="classification") for p in paths]
    X = sp.vstack([X for X, _, _ in parts], format="csr", dtype=np.float64)
    y = np.concatenate([y for _, y, _ in parts])
    meta = {
        "feature_names": None,
        "file": str(paths[0]),
        "files": [str(p) for p in paths],
        "sha256": manifest[paths[0].name]["sha256"],
        "test_rows": parts[1][0].shape[0] if len(parts) > 1 else 0,
        "format": "svmlight",
    }
    return X, y, meta


__all__ = [
    "LIBSVM",
    "LIBSVM_URL",
    "LibsvmInfo",
    "base_url",
    "data_home",
    "describe_libsvm",
    "fetch",
    "is_fetched",
    "libsvm_info",
    "load",
    "read_manifest",
]
