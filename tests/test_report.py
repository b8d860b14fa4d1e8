"""`logreg report`: the HTML page from a real store made by a small sweep and a throughput run,
rendered in a real headless browser where Debian's chromium is installed."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.helpers import headless_chromium


@pytest.fixture(scope="module")
def store(tmp_path_factory, repo_root):
    from logreg.cli import main
    from logreg.tune import SweepOptions, load_experiment, run_sweep

    d = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{d}/mlflow.db"
    exp = load_experiment(repo_root / "experiments" / "convergence.toml").override(
        n_trials=2, datasets=["iris"], optimizers=["adam"]
    )
    opts = SweepOptions(
        storage=str(d / "j.log"), tracking_uri=uri, progress=False, plots=False, results_dir=None
    )
    run_sweep(exp, opts)
    status = main(
        ["throughput", "--sizes", "1e3,1e4", "--dims", "5", "--impls", "numpy", "--batch-size", "0",
         "--warmup", "1", "--repeats", "2", "--tracking-uri", uri]
    )  # fmt: skip
    assert status == 0
    return uri


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):
    from logreg.cli import main

    out = tmp_path_factory.mktemp("page")
    assert main(["report", store, "--out", str(out)]) == 0
    return out


def test_report_holds_every_section_and_its_images(page):
    html = (page / "index.html").read_text()
    anchors = ("headline", "environment", "sweeps", "throughput", "roofline", "convergence")
    assert [html.index(f'id="{a}"') for a in anchors] == sorted(html.index(f'id="{a}"') for a in anchors)
    # The headline first: the gap to scikit-learn, in the words the sweep prints.
    assert "gap to scikit-learn: worst" in html.split('id="environment"')[0]
    assert "No data." not in html.split('id="convergence"')[0].split('id="sweeps"')[1]  # sweeps filled
    for text in (
        "scikit-learn test accuracy",
        "gap to scikit-learn",
        "hyperparameters",
        "roofline ratio",
        "Performance profiles",
        "not reached",
        "logreg report",
    ):
        assert text in html
    images = re.findall(r'<img src="([^"]+)"', html)
    expected = {"compare/throughput.png", "convergence/suboptimality_time.png"}
    expected |= {"convergence/suboptimality_epochs.png", "convergence/profiles.png"}
    assert set(images) == expected  # a CPU-only store: no speedup figure (a line says why)
    assert "No CUDA throughput runs" in html
    # What every row of a sweep table shares is said once, in its caption, not in a column.
    sweeps = html.split('id="sweeps"')[1].split('id="throughput"')[0]
    assert '<p class="caption">experiment sweep/convergence' in sweeps and "<th>experiment</th>" not in sweeps
    for src in images:
        assert not src.startswith("/") and (page / src).stat().st_size > 5_000  # relative, beside the page
    assert "http://" not in html and "https://" not in html  # no server, nothing fetched


def test_report_on_an_empty_store_is_one_line(run_cli, tmp_path):
    from logreg.tracking import make_client

    make_client(f"sqlite:///{tmp_path}/empty.db")  # MLflow's tables, no runs
    status, _, err = run_cli("report", f"sqlite:///{tmp_path}/empty.db", "--out", tmp_path / "o")
    assert status == 2 and "No sweep or throughput runs found" in err


CHROMIUM = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


@pytest.mark.slow
@CHROMIUM
def test_report_renders_in_headless_chromium(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    headless_chromium(f"--screenshot={shot}", "--hide-scrollbars", url=(page / "index.html").as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1366, 900)
    # The page drew something: more than a blank screen (several distinct colours, dark text).
    colours = image.getcolors(maxcolors=1_000_000)
    assert len(colours) > 50
    assert min(sum(c) for _, c in colours) < 200


MEASURE = """<script>window.addEventListener("load", () => {
  const boxes = [document.documentElement, ...document.querySelectorAll(".scroll")];
  const over = boxes.filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.className || e.tagName);
  const pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify({over: over, boxes: boxes.length, width: window.innerWidth});
  document.body.appendChild(pre);
});</script>"""


@pytest.mark.slow
@CHROMIUM
def test_report_has_no_horizontal_scrollbar_at_1366_px(page):
    # The page's own scroll widths, measured by chromium after layout: neither the page nor any
    # table's box is wider than the window (1366 px, scrollbars shown).
    measured = page / "measure.html"
    measured.write_text((page / "index.html").read_text().replace("</body>", MEASURE + "</body>"))
    dom = headless_chromium("--dump-dom", url=measured.as_uri())
    found = json.loads(re.search(r'<pre id="measure">(.*?)</pre>', dom).group(1))
    assert found["width"] == 1366 and found["boxes"] >= 5  # the page and its tables were measured
    assert found["over"] == []


def test_report_with_a_cuda_store_shows_the_speedup_and_crossover(tmp_path):
    from logreg.cli import main
    from tests.helpers import log_throughput_rows, throughput_row

    cpu, gpu = f"sqlite:///{tmp_path}/cpu.db", f"sqlite:///{tmp_path}/gpu.db"
    # Known numbers (made up, as in test_compare): CUDA 0.5x the CPU at n=100, 2x at n=10000.
    log_throughput_rows(
        cpu, [throughput_row("module", "cpu", 100, 1e6), throughput_row("module", "cpu", 10_000, 1e7)]
    )
    log_throughput_rows(
        gpu, [throughput_row("module", "cuda", 100, 5e5), throughput_row("module", "cuda", 10_000, 2e7)]
    )
    out = tmp_path / "page"
    assert main(["report", cpu, gpu, "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert set(re.findall(r'<img src="(compare/[^"]+)"', html)) == {
        "compare/throughput.png",
        "compare/speedup.png",
    }
    speedup = html.split("CUDA / CPU speedup")[1].split("Crossover n")[0]
    assert "0.50x" in speedup and "2.00x" in speedup
    assert "1e+03" in html.split("Crossover n")[1].split("</table>")[0]
    assert "No CUDA throughput runs" not in html
    # The environment, one column per store and device.
    assert "cpu.db (cpu)" in html and "gpu.db (cuda)" in html
