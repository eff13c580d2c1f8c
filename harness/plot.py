"""Figures of a search (``harness plot``, ``harness report``): architecture weights over the epochs, the
derived cells, the collapse to parameter-free ops, and a leaderboard with every seed and the paper's number.

matplotlib (the ``plot`` extra) is imported only here, with its non-interactive Agg backend, and only when
a figure is drawn. Every ``*_figure`` function returns a ``matplotlib.figure.Figure`` (no pyplot state, so
figures can be drawn from threads and tests); :func:`save` writes one as PNG, SVG or PDF.

Cells are drawn with Graphviz's ``dot`` where it is on the machine (``engine="dot"``, or ``"auto"``), else with
a small layered layout in matplotlib (``engine="python"``): inputs on the left, each node one column further
than its furthest input, the output on the right.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.api import RunRecord
from harness.errors import HarnessError

FORMATS = ("png", "svg", "pdf")
ENGINES = ("auto", "dot", "python")


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise HarnessError("plotting needs matplotlib: pip install 'nas-harness[plot]'") from None
    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in SVG (searchable, smaller)
    matplotlib.rcParams["svg.hashsalt"] = "nas-harness"  # the same figure gives the same SVG bytes
    from matplotlib.figure import Figure

    return Figure


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise HarnessError(f"unknown figure format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    return fmt


def save(fig, output: str | Path, fmt: str | None = None) -> Path:
    """Write ``fig`` to ``output`` (its suffix names the format unless ``fmt`` does); returns the path."""
    output = Path(output)
    fmt = check_format(fmt or output.suffix.lstrip(".") or "png")
    if output.suffix.lstrip(".") != fmt:
        output = output.with_name(output.name + "." + fmt)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, format=fmt, dpi=110, bbox_inches="tight", metadata={"Software": "nas-harness"}
                if fmt == "png" else {"Creator": "nas-harness"} if fmt == "svg" else None)
    return output


# ----------------------------------------------------------------------------------------------
# architecture weights over the search


def derived_ops(space, genotype_text: str | None) -> dict[tuple[str, int], str]:
    """(cell kind, edge index) -> the op ``genotype_text`` keeps on that edge (edges it drops are absent)."""
    if not genotype_text:
        return {}
    graphs = space.cell_graph(space.parse(genotype_text))
    return {(kind, e.index): e.op for kind, g in graphs.items() for e in g.edges if e.index is not None}


def alphas_figure(record: RunRecord, space):
    """The probability of every op on every edge over the search epochs of ``record``: one panel per
    (cell kind, edge), one line per op; the op the run's final genotype keeps on an edge is drawn thick and
    named in the panel's title (an edge the genotype drops says so)."""
    Figure = _matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    curve = [e for e in record.search.get("curve", []) if e.get("probabilities")]
    if not curve:
        raise HarnessError(f"run {record.id} has no per-epoch architecture weights (its record predates them, "
                           f"or its search did not finish an epoch); run it again to plot them")
    kinds = [k for k in space.cell_kinds if k in curve[0]["probabilities"]]
    derived = derived_ops(space, record.genotype) if record.genotype else {}
    n_edges = len(space.edges)
    cols = min(n_edges, 7)
    rows_per_kind = math.ceil(n_edges / cols)
    fig = Figure(figsize=(2.3 * cols, 1.9 * rows_per_kind * len(kinds) + 0.8), layout="constrained")
    axes = fig.subplots(rows_per_kind * len(kinds), cols, squeeze=False, sharex=True, sharey=True)
    epochs = [e["epoch"] + 1 for e in curve]
    ops_all = list(dict.fromkeys(op for k in kinds for ops in space.edge_ops(k) for op in ops))
    colour = {op: f"C{i % 10}" for i, op in enumerate(ops_all)}
    for ki, kind in enumerate(kinds):
        edge_ops = space.edge_ops(kind)
        for e, (src, dst) in enumerate(space.edges):
            ax = axes[ki * rows_per_kind + e // cols][e % cols]
            keep = derived.get((kind, e))
            for o, op in enumerate(edge_ops[e]):
                ys = [entry["probabilities"][kind][e][o] for entry in curve]
                ax.plot(epochs, ys, color=colour[op], lw=2.6 if op == keep else 1.0,
                        marker="o" if len(epochs) == 1 else None, ms=3, label=op)
                if op == keep:
                    ax.plot(epochs[-1], ys[-1], marker="*", ms=10, color=colour[op], mec="black", mew=0.6)
            title = f"{kind} {dst}<-{src}"
            ax.set_title(f"{title}: {keep}" if keep else f"{title} (dropped)" if derived else title, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for e in range(n_edges, rows_per_kind * cols):
            axes[ki * rows_per_kind + e // cols][e % cols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("search epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color=colour[op], label=op) for op in ops_all]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(ops_all), 8), fontsize=8, frameon=False)
    fig.suptitle(f"run {record.id}: {record.method} on {record.space} / {record.dataset}, seed {record.seed} "
                 f"- op probabilities per edge (thick, star: the derived op)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# derived cells


def _dot_source(graph, title: str) -> str:
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph cell {", "  rankdir=LR; bgcolor=white;", f"  label={q(title)}; labelloc=t; fontsize=16;",
             '  node [style="filled,rounded", shape=box, fontname="Helvetica", fontsize=14];',
             '  edge [fontname="Helvetica", fontsize=11];']
    for name in graph.inputs:
        lines.append(f"  {q(name)} [fillcolor=darkseagreen2];")
    for name in graph.nodes:
        lines.append(f"  {q(name)} [fillcolor=lightblue, shape=circle];")
    lines.append(f"  {q(graph.output)} [fillcolor=palegoldenrod];")
    if graph.inputs:
        lines.append("  {rank=same; " + " ".join(q(n) for n in graph.inputs) + "}")
    for e in graph.edges:
        style = f" [label={q(e.op)}]" if e.op else " [color=gray50]"
        lines.append(f"  {q(e.src)} -> {q(e.dst)}{style};")
    lines.append("}")
    return "\n".join(lines)


def dot_available() -> str | None:
    """The path of Graphviz's ``dot``, or None."""
    return shutil.which("dot")


def render_dot(graph, title: str, output: Path, fmt: str) -> Path:
    dot = dot_available()
    if dot is None:
        raise HarnessError("engine 'dot' needs Graphviz's dot on PATH (apt-get install graphviz); "
                           "valid engines here: auto, python")
    output.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([dot, f"-T{fmt}", "-o", str(output)], input=_dot_source(graph, title), text=True,
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise HarnessError(f"dot failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return output


def layered_layout(graph) -> dict[str, tuple[float, float]]:
    """Node -> (x, y): inputs in column 0, each other node one column right of its furthest input, the
    output in the last column; nodes of a column spread evenly in y."""
    level = {name: 0 for name in graph.inputs}
    preds = defaultdict(list)
    for e in graph.edges:
        preds[e.dst].append(e.src)
    for name in graph.nodes:  # nodes are listed in topological order
        level[name] = 1 + max((level.get(p, 0) for p in preds[name]), default=0)
    level[graph.output] = 1 + max(level.values(), default=0)
    columns = defaultdict(list)
    for name in (*graph.inputs, *graph.nodes, graph.output):
        columns[level[name]].append(name)
    pos = {}
    for x, names in columns.items():
        for i, name in enumerate(names):
            pos[name] = (float(x), (len(names) - 1) / 2.0 - i)
    return pos


def _near_segment(p, a, b, tol: float = 0.2) -> bool:
    """Whether point ``p`` lies within ``tol`` of the segment ``a``-``b`` (strictly between its ends)."""
    (px, py), (ax_, ay), (bx, by) = p, a, b
    dx, dy = bx - ax_, by - ay
    t = ((px - ax_) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12)
    if not 0.05 < t < 0.95:
        return False
    return math.hypot(ax_ + t * dx - px, ay + t * dy - py) < tol


def cell_figure(graphs: Mapping[str, Any], title: str):
    """Every cell kind in ``graphs`` (kind -> ``CellGraph``) drawn with :func:`layered_layout`, one panel each."""
    Figure = _matplotlib()
    fig = Figure(figsize=(7.5, 3.6 * len(graphs)), layout="constrained")
    axes = fig.subplots(len(graphs), 1, squeeze=False)
    for ax, (kind, graph) in zip(axes[:, 0], graphs.items()):
        pos = {name: (1.8 * x, 1.1 * y) for name, (x, y) in layered_layout(graph).items()}  # room for labels
        fill = {**{n: "#c1e1c1" for n in graph.inputs}, **{n: "#add8e6" for n in graph.nodes},
                graph.output: "#eee8aa"}
        parallel: dict[tuple[str, str], int] = defaultdict(int)
        for e in graph.edges:
            (x0, y0), (x1, y1) = pos[e.src], pos[e.dst]
            k = parallel[(e.src, e.dst)]
            parallel[(e.src, e.dst)] += 1
            # straight unless the segment passes close to another node; parallel edges bend apart
            rad = 0.35 if any(_near_segment(pos[n], (x0, y0), (x1, y1)) for n in pos if n not in (e.src, e.dst)) else 0.0
            rad += 0.3 * k
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": "black" if e.op else "0.6", "lw": 1.1,
                                    "shrinkA": 14, "shrinkB": 14, "connectionstyle": f"arc3,rad={rad}"})
            if e.op:  # at the curve's middle: matplotlib's arc3 control point is mid + rad * (dy, -dx)
                ax.text((x0 + x1) / 2 + 0.5 * rad * (y1 - y0), (y0 + y1) / 2 - 0.5 * rad * (x1 - x0), e.op,
                        fontsize=7.5, ha="center", va="center", zorder=4,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
        for name, (x, y) in pos.items():
            ax.text(x, y, name, ha="center", va="center", fontsize=10, zorder=5,
                    bbox={"boxstyle": "round,pad=0.35", "fc": fill[name], "ec": "0.3"})
        xs, ys = zip(*pos.values())
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
        ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
        ax.set_aspect("equal")  # so that the label positions computed in data units sit on the drawn arcs
        ax.set_axis_off()
        ax.set_title(f"{kind} cell", fontsize=10)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_cell(genotype_text: str, space, output: str | Path, fmt: str = "png", engine: str = "auto",
              title: str = "") -> list[Path]:
    """Draw each cell kind of ``genotype_text`` to ``output`` (one file per kind, ``<stem>-<kind>.<fmt>``, with
    Graphviz; one file with a panel per kind with the Python layout). Returns the files written."""
    check_format(fmt)
    if engine not in ENGINES:
        raise HarnessError(f"unknown drawing engine {engine!r}; valid choices: {', '.join(ENGINES)}")
    graphs = space.cell_graph(space.parse(genotype_text))
    output = Path(output)
    stem = output.with_suffix("") if output.suffix.lstrip(".") in FORMATS else output
    if engine == "dot" or (engine == "auto" and dot_available()):
        return [render_dot(g, f"{title} - {kind} cell" if title else f"{kind} cell",
                           stem.with_name(f"{stem.name}-{kind}.{fmt}"), fmt) for kind, g in graphs.items()]
    return [save(cell_figure(graphs, title or genotype_text[:90]), stem.with_name(f"{stem.name}.{fmt}"), fmt)]


# ----------------------------------------------------------------------------------------------
# collapse to parameter-free ops


def collapse_measure(record: RunRecord) -> tuple[str, list[tuple[int, float]]] | None:
    """(what is counted, [(epoch, count)]) of a run's search curve: parameter-free ops in the derived normal
    cell (``param_free_normal``) or, in a single-cell space, the cell (``param_free``); None without them."""
    for key in ("param_free_normal", "param_free"):
        points = [(e["epoch"] + 1, float(e[key])) for e in record.search.get("curve", []) if key in e]
        if points:
            return key, points
    return None


def method_styles(methods) -> dict[str, dict[str, str]]:
    """One look per method that no other method in the figure shares: 20 colours (tab10, then tab20's light
    shades), then the marker and after that the line style change with each further round."""
    light = ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d",
             "#9edae5"]
    colours = [f"C{i}" for i in range(10)] + light
    markers, lines = "osD^vPX*", ("-", "--", ":", "-.")
    return {m: {"color": colours[i % 20], "marker": markers[i // 20 % len(markers)],
                "linestyle": lines[i // (20 * len(markers)) % len(lines)]}
            for i, m in enumerate(methods)}


def collapse_figure(records: Sequence[RunRecord], space: str | None = None):
    """Parameter-free ops in the derived normal cell per search epoch: one panel per (space, dataset), one line
    per method (mean over seeds) and a band from the fewest to the most over seeds."""
    Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    runs = [r for r in records if r.status == "completed" and (space is None or r.space == space)]
    if space is not None and not runs:
        present = sorted({r.space for r in records if r.status == "completed"})
        raise HarnessError(f"no completed run on space {space!r}; spaces present: {', '.join(present) or '(none)'}")
    series: dict[tuple[str, str], dict[str, list[list[tuple[int, float]]]]] = defaultdict(lambda: defaultdict(list))
    what: dict[tuple[str, str], str] = {}
    for r in runs:
        measure = collapse_measure(r)
        if measure is not None:
            series[(r.space, r.dataset)][r.method].append(measure[1])
            what[(r.space, r.dataset)] = measure[0]
    if not series:
        raise HarnessError("no completed run has per-epoch parameter-free counts (records before they were kept?); "
                           "run a search again to plot the collapse")
    panels = sorted(series)
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    methods = sorted({m for p in panels for m in series[p]})
    style = method_styles(methods)
    for i, panel in enumerate(panels):
        ax = axes[i // cols][i % cols]
        for method, curves in sorted(series[panel].items()):
            by_epoch: dict[int, list[float]] = defaultdict(list)
            for curve in curves:
                for epoch, value in curve:
                    by_epoch[epoch].append(value)
            xs = sorted(by_epoch)
            mean = [sum(by_epoch[x]) / len(by_epoch[x]) for x in xs]
            ax.plot(xs, mean, ms=3.5, lw=1.5, label=f"{method} (n={len(curves)})", **style[method])
            if len(curves) > 1:
                ax.fill_between(xs, [min(by_epoch[x]) for x in xs], [max(by_epoch[x]) for x in xs],
                                color=style[method]["color"], alpha=0.12, lw=0)
        ax.set_title(f"{panel[0]} / {panel[1]}", fontsize=10)
        ax.set_xlabel("search epoch", fontsize=9)
        cell = "normal cell" if what[panel] == "param_free_normal" else "cell"
        ax.set_ylabel(f"parameter-free ops in derived {cell}", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=2 if len(series[panel]) > 8 else 1)
    for i in range(len(panels), rows * cols):
        axes[i // cols][i % cols].set_visible(False)
    fig.suptitle("collapse: parameter-free ops of the derived cell per search epoch (line: mean over seeds; "
                 "band: min-max)", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# leaderboard


def leaderboard_figure(df):
    """Per (space, dataset) column of a leaderboard table (``harness.leaderboard.leaderboard``, optionally
    ``with_paper``): each method's mean ± std as an error bar, every seed as a point, and the paper's reported
    value (as an accuracy) as a red diamond."""
    Figure = _matplotlib()
    columns = list(df.attrs.get("columns", {}))
    if not columns:
        raise HarnessError("the leaderboard has no (space, dataset) column to plot")
    seeds = df.attrs.get("seeds", {})
    metric = df.attrs.get("metric", "test_accuracy").replace("_", " ")
    cols = min(len(columns), 3)
    rows = math.ceil(len(columns) / cols)
    methods = list(df.index)
    fig = Figure(figsize=(4.8 * cols, 0.45 * len(methods) * rows + 1.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, column in enumerate(columns):
        ax = axes[i // cols][i % cols]
        labelled = False
        for y, method in enumerate(methods):
            cell = df.at[method, column] if column in df.columns else None
            if not isinstance(cell, dict):
                continue
            centre = cell.get("mean", cell.get("best"))
            ax.errorbar(centre, y, xerr=cell.get("std") or 0, fmt="s", color="C0", ms=6, capsize=4,
                        label=None if labelled else "ours (mean ± std)")
            points = list(seeds.get(method, {}).get(column, {}).values())
            ax.plot(points, [y + 0.18] * len(points), "o", color="0.35", ms=3.5, alpha=0.8,
                    label=None if labelled else "one seed")
            if "paper" in cell:
                ax.plot(cell["paper"]["value"], y - 0.18, "D", color="C3", ms=6,
                        label=None if labelled else "paper")
            labelled = True
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_ylim(-0.7, len(methods) - 0.3)
        ax.invert_yaxis()
        ax.set_title(column, fontsize=10)
        ax.set_xlabel(f"{metric} (%)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for i in range(len(columns), rows * cols):
        axes[i // cols][i % cols].set_visible(False)
    fig.suptitle(f"leaderboard, preset {df.attrs.get('preset')}: {df.attrs.get('protocol_label', '')}", fontsize=10)
    return fig
