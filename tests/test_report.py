"""`harness report`: the static site of a real store (two searches and a failed run), read as files and as a
real headless Chromium renders it (Debian's chromium package; the test skips, saying so, where it is absent)."""

import html
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from harness.api import RunRecord
from harness.cli import cli
from harness.store import ResultStore, config_key

TINY = ["--preset", "smoke", "--set", "search.epochs=2", "--set", "eval.epochs=1",
        "--set", "search.max_train_images=64", "--set", "eval.max_train_images=64", "--quiet"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>alert('x')</script> & more"


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    root = tmp_path_factory.mktemp("report")
    store = root / "runs.sqlite"
    invoke("run", "--plugin", "darts", "--space", "nb201", "--dataset", "digits", "--seeds", "0-1", "--store", store,
           *TINY)
    with ResultStore(store) as results:  # a run that failed, with markup in its error
        failed = results.start(RunRecord(method="gdas", space="s3", dataset="digits", seed=0, preset="smoke",
                                         config={"x": 1}, config_key=config_key({"x": 1}), command="harness run ..."))
        results.fail(failed, EVIL)
        records = results.records(None)
    out = invoke("report", "--store", store, "--output", root / "site")
    assert "index.html" in out.output
    return root / "site", records


def test_index_has_the_leaderboard_figures_and_every_run(site):
    out, records = site
    index = (out / "index.html").read_text()
    # the leaderboard: one row for darts, the nb201 / digits column, the paper's header lines
    assert re.search(r"<td>darts\s*</td>", index) and "nb201 / digits" in index and "paper numbers" in index
    for name in ("leaderboard.png", "collapse.png"):
        assert f'src="figures/{name}"' in index and (out / "figures" / name).stat().st_size > 5000
    for r in records:
        assert f'href="runs/{r.id}.html"' in index and (out / "runs" / f"{r.id}.html").is_file()
    assert "3 runs: 2 completed, 1 failed" in index
    # markup in a stored value is shown, never run
    assert EVIL not in index and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in index


def test_run_page_has_what_reproduction_needs(site):
    out, records = site
    r = records[0]
    page = (out / "runs" / f"{r.id}.html").read_text()
    for text in (html.escape(r.genotype), html.escape(r.command), "Resolved configuration", "Search curve", "Retrain curve", "Command",
                 r.torch_version, "nas-harness", r.config_key):
        assert text in page, text
    assert '"space": "nb201"' in page.replace("&quot;", '"')  # the resolved configuration, as JSON
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 2 and all((out / "runs" / src).resolve().is_file() for src in images)
    failed = (out / "runs" / f"{records[-1].id}.html").read_text()
    assert "Error" in failed and EVIL not in failed


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
@pytest.mark.parametrize("page", ["index", "run"])
def test_headless_chromium_renders_the_tables_and_every_image(site, page, tmp_path):
    out, records = site
    path = out / "index.html" if page == "index" else out / "runs" / f"{records[0].id}.html"
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    loaded, total = map(int, re.search(r'<body data-images="(\d+)/(\d+)"', dom).groups())
    assert total >= 2 and loaded == total, dom[:500]
    assert dom.count("<table") >= 1 and ("<td>darts" in dom if page == "index" else "Search curve" in dom)


def test_run_pages_drawn_by_two_processes_are_the_same(site, tmp_path):
    out, records = site
    invoke("report", "--store", out.parent / "runs.sqlite", "--output", tmp_path / "par", "--jobs", 2)
    for r in records:
        assert (tmp_path / "par" / "runs" / f"{r.id}.html").read_text() == (out / "runs" / f"{r.id}.html").read_text()
    assert sorted(p.name for p in (tmp_path / "par" / "figures").iterdir()) == sorted(
        p.name for p in (out / "figures").iterdir())
