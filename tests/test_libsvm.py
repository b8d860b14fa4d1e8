"""LIBSVM datasets by name: fetched over real HTTP (a server on 127.0.0.1 serving small generated
files), checked, recorded by sha256, loaded; every failure is one line and leaves no half file."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from logreg.data import libsvm
from logreg.errors import LogregError


def _svmlight(
    n_rows: int, n_features: int, seed: int, compress: bool
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """An svmlight file's bytes (1-based), and the X and y it holds."""
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n_rows, n_features)), 4) * (rng.random((n_rows, n_features)) < 0.5)
    X[:, -1] = 0.0  # the file's largest index is below n_features: the registry fixes the columns
    y = np.where(rng.random(n_rows) < 0.5, -1, 1)
    buf = io.BytesIO()
    dump_svmlight_file(X, y, buf, zero_based=False)
    data = buf.getvalue()
    return (bz2.compress(data) if compress else data), X, y


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        state = self.server.state
        name = self.path.rsplit("/", 1)[-1]
        state["requests"].append(name)
        body = state["files"].get(name)
        if body is None:
            self.send_error(404)
            return
        cut = name in state["truncate"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if cut else 0)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)  # then the connection closes

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A real HTTP server with two tiny entries: a9a (two plain files) and rcv1.binary (two .bz2)."""
    sizes = {"a9a": (30, 20, 8), "rcv1.binary": (25, 15, 12)}
    state = {"files": {}, "requests": [], "truncate": set(), "data": {}}
    for seed, (name, (n_train, n_test, d)) in enumerate(sizes.items()):
        info = dataclasses.replace(libsvm.LIBSVM[name], n_train=n_train, n_test=n_test, n_features=d)
        monkeypatch.setitem(libsvm.LIBSVM, name, info)
        for (file, rows), part in zip(info.parts, range(2), strict=True):
            body, X, y = _svmlight(rows, d, seed=10 * seed + part, compress=file.endswith(".bz2"))
            state["files"][file], state["data"][file] = body, (X, y)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("LOGREG_LIBSVM_URL", f"http://127.0.0.1:{httpd.server_address[1]}/binary")
    monkeypatch.setenv("LOGREG_DATA_HOME", str(tmp_path / "data"))
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def _cache() -> set[str]:
    folder = libsvm.data_home()
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.parametrize("name", ["a9a", "rcv1.binary"])
def test_fetch_then_load(server, name):
    info = libsvm.LIBSVM[name]
    paths = libsvm.fetch(name)
    assert [p.name for p in paths] == [info.train_file, info.test_file]
    assert libsvm.is_fetched(name)
    manifest = json.loads((libsvm.data_home() / "manifest.json").read_text())
    for path in paths:
        assert manifest[path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert path.read_bytes() == server["files"][path.name]
    X, y, meta = libsvm.load(name)
    (X_train, y_train), (X_test, y_test) = (server["data"][f] for f in (info.train_file, info.test_file))
    assert X.format == "csr" and X.dtype == np.float64
    assert X.shape == (info.n_train + info.n_test, info.n_features)
    np.testing.assert_allclose(X.toarray(), np.vstack([X_train, X_test]))
    assert y.tolist() == [*y_train, *y_test]
    assert meta["file"] == str(paths[0]) and meta["files"] == [str(p) for p in paths]
    assert meta["sha256"] == manifest[info.train_file]["sha256"]
    assert meta["test_rows"] == info.n_test and meta["format"] == "svmlight"
    assert not any(n.startswith(".") for n in _cache())


def test_a_second_fetch_downloads_nothing(server):
    libsvm.fetch("a9a")
    assert server["requests"] == ["a9a", "a9a.t"]
    progress = []
    libsvm.fetch("a9a", progress=lambda *a: progress.append(a))
    assert server["requests"] == ["a9a", "a9a.t"] and progress == []


def test_an_interrupted_download_leaves_no_partial_file_and_no_manifest_entry(server):
    server["truncate"].add("a9a.t")
    with pytest.raises(
        LogregError, match=r"Downloading http://127\.0\.0\.1:\d+/binary/a9a\.t stopped after"
    ) as e:
        libsvm.fetch("a9a")
    assert "LOGREG_LIBSVM_URL" in _one_line(e)
    assert _cache() == {"a9a", "manifest.json"}  # the train file is whole; nothing of the test file
    assert set(libsvm.read_manifest()) == {"a9a"}
    assert not libsvm.is_fetched("a9a")
    server["truncate"].clear()
    libsvm.fetch("a9a")
    assert server["requests"] == ["a9a", "a9a.t", "a9a.t"]
    assert libsvm.load("a9a")[0].shape == (50, 8)


@pytest.mark.parametrize(
    ("served", "match"),
    [
        (None, r"/binary/a9a failed: HTTP 404 .*Check the network or LOGREG_LIBSVM_URL"),
        (
            b"1 1:0.5 3:1\n-1 1:0.5 2:x\n",
            r"/binary/a9a is not a valid svmlight file at line 2: .*Nothing was kept",
        ),
        (b"1 1:0.5 3:1\n-1 1:0.5 2:1\n", r"/binary/a9a has 2 rows where LIBSVM publishes 30\."),
    ],
    ids=["missing-file", "bad-line", "other-row-count"],
)
def test_a_bad_download_is_one_line_and_nothing_is_kept(server, served, match):
    if served is None:
        del server["files"]["a9a"]
    else:
        server["files"]["a9a"] = served
    with pytest.raises(LogregError, match=match) as e:
        libsvm.fetch("a9a")
    _one_line(e)
    assert _cache() == set()


def test_a_corrupted_cache_file_is_removed_then_fetched_again(server):
    path = libsvm.fetch("a9a")[1]
    path.write_bytes(path.read_bytes().replace(b"1:", b"2:", 1))
    with pytest.raises(
        LogregError, match=r"was corrupted .* has been removed\. Run: logreg datasets fetch a9a$"
    ) as e:
        libsvm.load("a9a")
    _one_line(e)
    assert not path.exists() and not libsvm.is_fetched("a9a")
    libsvm.fetch("a9a")
    assert server["requests"] == ["a9a", "a9a.t", "a9a.t"]
    assert libsvm.load("a9a")[0].shape == (50, 8)


def test_loading_what_is_not_fetched_says_how_to_fetch_it(server):
    with pytest.raises(
        LogregError,
        match=r"^Dataset 'rcv1\.binary' is not fetched yet\. Run: logreg datasets fetch rcv1\.binary$",
    ):
        libsvm.load("rcv1.binary")
    with pytest.raises(
        LogregError, match=r"Unknown LIBSVM dataset 'mnist'\. Known names: a9a, w8a, real-sim"
    ):
        libsvm.load("mnist")


def test_data_home_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LOGREG_DATA_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert libsvm.data_home() == tmp_path / "logreg" / "libsvm"
    monkeypatch.setenv("LOGREG_DATA_HOME", str(tmp_path / "d"))
    assert libsvm.data_home() == tmp_path / "d" / "libsvm"


def test_cli_fetches_and_lists(server, run_cli):
    status, out, err = run_cli("datasets", "fetch", "a9a")
    assert status == 0 and err == ""
    assert out.splitlines()[0].startswith(f"a9a: {libsvm.data_home() / 'a9a'} (")
    status, out, err = run_cli("datasets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(libsvm.LIBSVM) <= set(rows) and {"iris", "blobs"} <= set(rows)
    assert rows["a9a"]["fetched"] is True and rows["rcv1.binary"]["fetched"] is False
    status, out, err = run_cli("datasets")
    assert status == 0 and any(line.split()[:1] == ["rcv1.binary"] for line in out.splitlines())


def test_cli_unknown_name_is_one_line_and_exit_2(server, run_cli):
    status, out, err = run_cli("datasets", "fetch", "a9a", "mnist")
    assert status == 2 and out == ""
    assert err.splitlines() == [
        "logreg: error: Unknown LIBSVM dataset 'mnist'. Known names: a9a, w8a, real-sim, rcv1.binary, "
        "news20.binary, covtype.binary."
    ]
    assert server["requests"] == []  # names are checked before any download


def test_a_fetched_name_trains_with_its_own_test_file_as_the_test_part(server, run_cli):
    """`--dataset rcv1.binary` once fetched: the test file's rows are the test part, every impl."""
    from logreg import TrainConfig, load_split

    libsvm.fetch("rcv1.binary")
    info = libsvm.LIBSVM["rcv1.binary"]
    split = load_split(TrainConfig(dataset="rcv1.binary", seed=5))
    assert split.sparse and split.n_features == info.n_features
    assert len(split.y_test) == info.n_test and len(split.y_train) + len(split.y_val) == info.n_train
    _, y_test = server["data"][info.test_file]
    assert [split.class_names[i] for i in split.y_test] == [str(v) for v in y_test]
    for impl in ("numpy", "autograd", "module"):
        status, out, err = run_cli(
            "train", "--dataset", "rcv1.binary", "--impl", impl, "--epochs", "3", "--seed", "5", "--quiet"
        )
        assert status == 0, err
        assert out.startswith("rcv1.binary:")


def test_a_fetched_name_works_in_throughput_and_experiment_files(server, run_cli, tmp_path):
    from logreg.experiment import load_experiment

    libsvm.fetch("rcv1.binary")
    status, out, err = run_cli("throughput", "--sparse", "rcv1.binary", "--repeats", "1", "--no-track")
    assert status == 0, err
    assert out.count("rcv1.binary") == 3  # one row per implementation
    toml = tmp_path / "e.toml"
    toml.write_text('name = "e"\ndatasets = ["rcv1.binary"]\nmodels = ["logistic", "mlp"]\n')
    cells = load_experiment(toml).cells()
    assert {c.dataset for c in cells} == {"rcv1.binary"} and {c.model for c in cells} == {
        "logistic"
    }  # dense only
