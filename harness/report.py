"""``harness report``: one static HTML site of a results store, viewable from the disk with no server and no
network (no script, font or style is fetched; every figure is a file beside the pages).

- ``index.html``: the leaderboard (the table ``harness leaderboard --with-paper`` prints, with its header), the
  collapse and leaderboard figures, and every run of the store (failed ones with their error), each linked to
- ``runs/<id>.html``: the run's status, command, resolved configuration, genotype and cell picture, op
  probabilities over the search, the search and retrain curves, metrics, costs, plugin and torch versions and
  the device.

A figure that cannot be drawn (no matplotlib, a run without per-epoch weights) is replaced by one line saying
why; the pages are still written. Each page ends with a small inline script that counts its images that
loaded (``<body data-images="loaded/total">``), which the headless-browser check reads.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.api import RunRecord
from harness.errors import HarnessError

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } tr.failed td { background: #fde8e8; } tr.running td { background: #fff7dd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; white-space: pre-wrap; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; font-size: 0.85em; }
dt { font-weight: 600; } dd { margin: 0; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
.missing { color: #a33; font-style: italic; }
"""

# counts the images that loaded: <body data-images="loaded/total"> (read by the headless-browser test)
SCRIPT = """
<script>
function countImages() {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
}
window.addEventListener("load", countImages);
</script>
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, up: str = "") -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n{SCRIPT}</body>\n</html>\n")


def _dl(items: Mapping[str, Any]) -> str:
    return "<dl>\n" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>\n" for k, v in items.items()) + "</dl>\n"


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(_number(row.get(c), digits))}</td>" for c in columns) + "</tr>\n"
                   for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _figure(make: Callable[[], list[Path]], rel_to: Path, alt: str) -> str:
    """``<img>`` tags for the files ``make()`` writes, or one line saying why there is no figure."""
    try:
        paths = make()
    except HarnessError as exc:
        return f"<p class=\"missing\">no figure ({_e(alt)}): {_e(exc)}</p>\n"
    return "".join(f"<img src=\"{_e(Path(os.path.relpath(p, rel_to)).as_posix())}\" alt=\"{_e(alt)}\">\n"
                   for p in paths)


def _curve_columns(curve: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for entry in curve:
        keys += [k for k, v in entry.items() if k not in keys and not isinstance(v, (dict, list))]
    return keys


def run_page(record: RunRecord, space, figures: Path, run_dir: Path, engine: str) -> str:
    """The page of one run (``runs/<id>.html``)."""
    from harness import plot

    acc = record.metrics.get("test_accuracy")
    title = f"run {record.id}: {record.method} on {record.space} / {record.dataset}, seed {record.seed}"
    parts = [f"<p><a href=\"../index.html\">&larr; all runs</a></p>\n<h1>{_e(title)}</h1>\n"]
    parts.append(_dl({"status": record.status, "test accuracy": _number(acc, 2) if acc is not None else "-",
                      "preset": record.preset, "attempt": record.attempt, "created": record.created,
                      "updated": record.updated, "device": record.device, "torch": record.torch_version,
                      "plugins": ", ".join(f"{k} {v}" for k, v in sorted(record.plugins.items())),
                      "config key": record.config_key}))
    if record.error:
        parts.append(f"<h2>Error</h2>\n<pre>{_e(record.error)}</pre>\n")
    parts.append(f"<h2>Command</h2>\n<pre>{_e(record.command)}</pre>\n")
    if record.genotype:
        parts.append(f"<h2>Derived architecture</h2>\n<pre>{_e(record.genotype)}</pre>\n")
        if space is not None:
            parts.append(_figure(lambda: plot.plot_cell(record.genotype, space, figures / f"run-{record.id}-cell",
                                                        "png", engine, title), run_dir, "derived cell"))
    search = record.search or {}
    if search.get("curve"):
        parts.append("<h2>Op probabilities over the search</h2>\n")
        if space is not None:
            parts.append(_figure(lambda: [plot.save(plot.alphas_figure(record, space),
                                                    figures / f"run-{record.id}-alphas.png")], run_dir, "op probabilities"))
        curve = search["curve"]
        parts.append("<h2>Search curve</h2>\n" + _table(curve, _curve_columns(curve)))
    retrain = record.metrics.get("curve") or []
    if retrain:
        parts.append("<h2>Retrain curve</h2>\n" + _table(retrain, _curve_columns(retrain)))
    metrics = {k: v for k, v in record.metrics.items() if k != "curve"}
    parts.append("<h2>Metrics</h2>\n" + _dl({k: _number(v, 4) if isinstance(v, float) else json.dumps(v)
                                             if isinstance(v, (dict, list)) else v for k, v in metrics.items()}))
    parts.append("<h2>Costs</h2>\n" + _dl({k: _number(v, 2) for k, v in record.costs.items()}))
    extra = {k: v for k, v in search.items() if k not in ("curve", "probabilities")}
    if extra:
        parts.append("<h2>Search summary</h2>\n<pre>" + _e(json.dumps(extra, indent=2, default=str)) + "</pre>\n")
    parts.append("<h2>Resolved configuration</h2>\n<pre>" + _e(json.dumps(record.config, indent=2, default=str))
                 + "</pre>\n")
    return _page(title, "".join(parts))


def _write_run_page(record: RunRecord, figures: Path, run_dir: Path, engine: str) -> None:
    """One run's page, in a worker process of ``build(jobs=N)`` (the space comes from that process's registry)."""
    from harness.plugins import load_registry

    registry = load_registry()
    space = registry.space(record.space) if record.space in registry.spaces else None
    (run_dir / f"{record.id}.html").write_text(run_page(record, space, figures, run_dir, engine))


def build(records: Sequence[RunRecord], output: str | Path, *, spaces: Mapping[str, Any], board=None,
          board_error: str = "", header: Mapping[str, str] | None = None, engine: str = "auto",
          title: str = "nas-harness report", jobs: int = 1) -> Path:
    """Write the site for ``records`` (every status) to ``output``; returns ``index.html``'s path.

    ``spaces``: space name -> the registered space (runs on a space not installed here get no figures);
    ``board``: the leaderboard table (``harness.leaderboard.leaderboard``, optionally ``with_paper``) or None
    with ``board_error`` saying why there is none; ``header``: what its exports print above it; ``jobs``: run
    pages (and their figures, most of the time a report takes) drawn by that many processes at once."""
    from harness import plot
    from harness.leaderboard import export, export_header

    output = Path(output)
    figures, run_dir = output / "figures", output / "runs"
    figures.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{_e(title)}</h1>\n"]
    done = [r for r in records if r.status == "completed"]
    parts.append(f"<p>{len(records)} runs: " + ", ".join(
        f"{sum(r.status == s for r in records)} {s}" for s in ("completed", "failed", "interrupted", "running")) + "</p>\n")
    parts.append("<h2>Leaderboard</h2>\n")
    if board is not None:
        parts.append(_dl(export_header(board, header or {})))
        # the same table as `harness leaderboard --export html`, its header comments shown above as a list
        parts.append("".join(line + "\n" for line in export(board, "html", header={}).splitlines()
                             if not line.startswith("<!--")))
        parts.append(_figure(lambda: [plot.save(plot.leaderboard_figure(board), figures / "leaderboard.png")],
                             output, "leaderboard"))
    else:
        parts.append(f"<p class=\"missing\">no leaderboard: {_e(board_error)}</p>\n")
    parts.append("<h2>Collapse to parameter-free ops</h2>\n")
    parts.append(_figure(lambda: [plot.save(plot.collapse_figure(done), figures / "collapse.png")], output, "collapse"))
    parts.append("<h2>Runs</h2>\n<table>\n<tr><th>id</th><th>status</th><th>method</th><th>space</th><th>dataset</th>"
                 "<th>seed</th><th>preset</th><th>test acc</th><th>genotype or error</th></tr>\n")
    for r in records:
        acc = r.metrics.get("test_accuracy")
        what = r.genotype or (f"error: {r.error}" if r.error else "")
        parts.append(f"<tr class=\"{_e(r.status)}\"><td><a href=\"runs/{r.id}.html\">{r.id}</a></td><td>{_e(r.status)}"
                     f"</td><td>{_e(r.method)}</td><td>{_e(r.space)}</td><td>{_e(r.dataset)}</td><td>{r.seed}</td>"
                     f"<td>{_e(r.preset)}</td><td>{_e(_number(acc, 2) if acc is not None else '-')}</td>"
                     f"<td><code>{_e(what)}</code></td></tr>\n")
        if jobs <= 1:
            (run_dir / f"{r.id}.html").write_text(run_page(r, spaces.get(r.space), figures, run_dir, engine))
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may hold torch's thread pools, which a forked child must not inherit
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done_page in [pool.submit(_write_run_page, r, figures, run_dir, engine) for r in records]:
                done_page.result()
    parts.append("</table>\n")
    index = output / "index.html"
    index.write_text(_page(title, "".join(parts)))
    return index
