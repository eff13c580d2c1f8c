"""Leaderboards from run records, and their export.

The table has one row per method and one column per (space, op set, dataset, evaluation protocol)
present, named ``"<space> / <dataset>"`` (``"darts [no-none] / cifar10"`` for a search of a subset of
the space's ops, a protocol suffix where one column would mix protocols; the header names every
column's evaluation protocol), plus ``"search cost"`` and ``"peak memory"``. Cells hold numbers, not text,
so that exports can carry them (JSON) and tests can check them:

- ``protocol="mean-std"`` (the default, and what this harness recommends): ``{"mean", "std", "n"}``
  over search seeds; ``std`` is the sample standard deviation (ddof=1). A single seed has no spread
  to estimate: its ``std`` is None (JSON null) and the text shows the value with ``(n=1)``, never
  ``± 0.00``. Where the records have them, the cell also holds the derived networks' mean size,
  ``params_m`` (millions of parameters, auxiliary head excluded) and ``flops_m`` (millions of
  multiply-adds), printed after the accuracy.
- ``protocol="best"``: ``{"best", "n"}``, the best seed, as the papers report it (best-of-N). The
  exports label it in the header and in every column name.
- ``"search cost"``: ``{"mean", "unit", "n"}``, the mean of ``costs['search_s']`` per counted run in
  hours: GPU hours for runs on CUDA, wall-clock hours on the CPU (the unit names which; a row mixing
  both says so).
- ``"peak memory"``: ``{"max_gib", "kind"}``, the largest ``costs['peak_mem_bytes']`` (GPU) of the
  counted runs, or for CPU runs their peak resident memory ``costs['peak_rss_bytes']``, in GiB.

Which runs count: only completed ones, of one preset (budgets are never mixed in a table:
``preset=None`` means the only preset present, and several present is an error naming them). Where
the same (method, space, dataset, seed, preset) was run more than once (``--force``, or a changed
``--set``), the latest completed attempt counts. A method run with a swapped component
(``--selector pt``) is a different recipe and gets its own row, labelled with the components that
differ, e.g. ``rome [selector=pt]``. Seeds of one cell that come from different configurations
(``--set`` overrides on some seeds only) are counted but named in the table's notes, which every
export prints in its header.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from tabulate import tabulate, tabulate_formats

from harness import __version__
from harness.api import RunRecord
from harness.errors import HarnessError
from harness.store import config_key

EXPORT_FORMATS = ("markdown", "csv", "latex", "html", "json")
PROTOCOLS = ("mean-std", "best")
PROTOCOL_LABELS = {"mean-std": "mean ± std over search seeds",
                   "best": "best of N seeds (papers' convention)"}
TABULATE_DEFAULTS = {"markdown": "github", "latex": "latex", "html": "html"}
SEARCH_COST, PEAK_MEMORY = "search cost", "peak memory"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numeric_metrics(records: Sequence[RunRecord]) -> list[str]:
    return sorted({k for r in records for k, v in r.metrics.items() if _number(v)})


def _choose_preset(done: Sequence[RunRecord], preset: str | None) -> str:
    presets = sorted({r.preset for r in done})
    if preset is None:
        if len(presets) > 1:
            raise HarnessError(f"the store holds completed runs of several presets ({', '.join(presets)}); "
                               f"choose one with --preset")
        return presets[0]
    if preset not in presets:
        raise HarnessError(f"no completed runs of preset {preset!r}; presets present: {', '.join(presets)}")
    return preset


def _labels(records: Sequence[RunRecord]) -> dict[int, str]:
    """Row label per record (by position): the method, plus the components that differ where one
    method was run with several component sets (a swap like ``--selector pt``)."""
    def components(r: RunRecord) -> dict[str, str]:
        return dict((r.config or {}).get("components") or {})

    sets_by_method: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in records:
        if components(r) not in sets_by_method[r.method]:
            sets_by_method[r.method].append(components(r))
    labels = {}
    for i, r in enumerate(records):
        sets = sets_by_method[r.method]
        kinds = sorted({k for s in sets for k in s if len({s.get(k) for s in sets}) > 1})
        mine = components(r)
        swapped = ", ".join(f"{k}={mine.get(k, '?')}" for k in kinds)
        labels[i] = f"{r.method} [{swapped}]" if kinds else r.method
    return labels


def _latest(records: Sequence[RunRecord], labels: Mapping[int, str]) -> list[tuple[str, RunRecord]]:
    """One record per (row, space, dataset, seed): the latest completed attempt."""
    latest: dict[tuple, tuple[tuple, str, RunRecord]] = {}
    for i, r in enumerate(records):
        order = (r.created, r.id or 0, r.attempt, i)  # ISO UTC strings sort in time; id breaks ties
        cell = (labels[i], r.space, r.dataset, r.seed)
        if cell not in latest or order > latest[cell][0]:
            latest[cell] = (order, labels[i], r)
    return [(label, r) for _, label, r in latest.values()]


def _search_cost(runs: Sequence[RunRecord]) -> dict[str, Any] | float:
    measured = [r for r in runs if _number(r.costs.get("search_s"))]
    if not measured:
        return math.nan
    cuda = {r.device.startswith("cuda") for r in measured}
    unit = "h (GPU and CPU mixed)" if len(cuda) > 1 else "GPU h" if cuda == {True} else "wall h (CPU)"
    return {"mean": sum(r.costs["search_s"] for r in measured) / 3600.0 / len(measured), "unit": unit,
            "n": len(measured)}


def _peak_memory(runs: Sequence[RunRecord]) -> dict[str, Any] | float:
    found = []
    for r in runs:
        if _number(r.costs.get("peak_mem_bytes")):
            found.append((r.costs["peak_mem_bytes"], "GPU"))
        elif _number(r.costs.get("peak_rss_bytes")):
            found.append((r.costs["peak_rss_bytes"], "CPU RSS"))
    if not found:
        return math.nan
    return {"max_gib": max(b for b, _ in found) / 2**30, "kind": "/".join(sorted({k for _, k in found}))}


def _op_set(r: RunRecord) -> str:
    return str(((r.config or {}).get("search") or {}).get("op_set") or "all")


def _eval_protocol(r: RunRecord) -> str:
    return str(((r.config or {}).get("eval") or {}).get("protocol") or "")


def _columns(chosen: Sequence[tuple[str, RunRecord]]) -> dict[int, str]:
    """Column name per record (by ``id``): ``"<space> / <dataset>"``, with the op set searched when it
    is not the space's full list (``"darts [no-none] / cifar10"``: a 7-op search of the DARTS space is
    never averaged with an 8-op one), and with the evaluation protocol where runs of one such column
    were evaluated under more than one (``"s2 / cifar10 (robustdarts)"``)."""
    base = {id(r): f"{r.space}{'' if _op_set(r) == 'all' else f' [{_op_set(r)}]'} / {r.dataset}"
            for _, r in chosen}
    protocols: dict[str, set[str]] = defaultdict(set)
    for _, r in chosen:
        protocols[base[id(r)]].add(_eval_protocol(r))
    return {id(r): (f"{base[id(r)]} ({_eval_protocol(r) or 'unnamed protocol'})"
                    if len(protocols[base[id(r)]]) > 1 else base[id(r)]) for _, r in chosen}


def leaderboard(records: list[RunRecord], metric: str = "test_accuracy", protocol: str = "mean-std",
                preset: str | None = None) -> pd.DataFrame:
    """Aggregate completed ``records`` into a table indexed by method (see the module docstring).

    ``df.attrs`` holds ``metric``, ``protocol``, ``protocol_label``, ``preset``, ``notes``, ``plugins``
    (distribution -> its versions among the counted runs, joined by "/"), ``columns`` (column -> its space and
    dataset), ``recipes`` (row -> the method it runs unchanged), ``eval_protocols`` and ``seeds`` (row -> column
    -> seed -> the counted run's value).
    """
    if protocol not in PROTOCOLS:
        raise HarnessError(f"unknown protocol {protocol!r}; valid choices: {', '.join(PROTOCOLS)}")
    done = [r for r in records if r.status == "completed"]
    if not done:
        raise HarnessError("the store has no completed runs; make some with `harness run --plugin METHOD --space "
                           "SPACE --dataset DATASET --seeds 0-3`")
    present = _numeric_metrics(done)
    if metric not in present:
        other = next((r.metrics[metric] for r in done if metric in r.metrics), None)
        why = f"is not a number ({other!r})" if other is not None else "is in no completed run"
        raise HarnessError(f"metric {metric!r} {why}; metrics present: {', '.join(present) or '(none)'}")
    preset = _choose_preset(done, preset)
    done = [r for r in done if r.preset == preset]
    chosen = [(label, r) for label, r in _latest(done, _labels(done)) if _number(r.metrics.get(metric))]
    if not chosen:
        raise HarnessError(f"no completed run of preset {preset!r} has metric {metric!r}; metrics present in "
                           f"that preset: {', '.join(_numeric_metrics(done)) or '(none)'}")

    column_of = _columns(chosen)
    cells: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for label, r in chosen:
        cells[label][column_of[id(r)]].append(r)
    notes, rows = [], []
    for label in sorted(cells):
        row: dict[str, Any] = {"method": label}
        for column, runs in sorted(cells[label].items()):
            values = pd.Series([float(r.metrics[metric]) for r in sorted(runs, key=lambda r: r.seed)])
            n = len(values)
            if protocol == "best":
                row[column] = {"best": float(values.max()), "n": n}
            else:
                row[column] = {"mean": float(values.mean()),
                               "std": float(values.std(ddof=1)) if n > 1 else None, "n": n}
            for key, size in (("params", "params_m"), ("flops", "flops_m")):
                sizes = [float(r.metrics[key]) for r in runs if _number(r.metrics.get(key))]
                if sizes:
                    row[column][size] = sum(sizes) / len(sizes) / 1e6
            configs = {config_key({k: v for k, v in (r.config or {}).items() if k != "seed"}) for r in runs}
            if len(configs) > 1:
                notes.append(f"{label} on {column}: its {n} seeds come from {len(configs)} different "
                             f"configurations (--set overrides on some seeds?)")
        counted = [r for runs in cells[label].values() for r in runs]
        row[SEARCH_COST], row[PEAK_MEMORY] = _search_cost(counted), _peak_memory(counted)
        rows.append(row)
    columns = sorted({c for c in column_of.values()}) + [SEARCH_COST, PEAK_MEMORY]
    table = pd.DataFrame(rows, columns=["method", *columns]).set_index("method")
    versions: dict[str, set[str]] = defaultdict(set)
    for _, r in chosen:
        for name, version in r.plugins.items():
            versions[name].add(str(version))
    eval_protocols = {column_of[id(r)]: _eval_protocol(r) for _, r in chosen if _eval_protocol(r)}
    # what each column is, and which method each row runs as its recipe (no swapped component)
    table.attrs["columns"] = {column_of[id(r)]: {"space": r.space, "dataset": r.dataset} for _, r in chosen}
    table.attrs["recipes"] = {label: r.method for label, r in chosen if label == r.method}
    # every counted run's value per cell, by seed (the points of `harness plot leaderboard`)
    table.attrs["seeds"] = {label: {column: {r.seed: float(r.metrics[metric]) for r in runs}
                                    for column, runs in sorted(cells[label].items())} for label in sorted(cells)}
    table.attrs.update({"metric": metric, "protocol": protocol, "protocol_label": PROTOCOL_LABELS[protocol],
                        "preset": preset, "notes": notes, "eval_protocols": dict(sorted(eval_protocols.items())),
                        "plugins": {name: "/".join(sorted(v)) for name, v in sorted(versions.items())}})
    return table


# ----------------------------------------------------------------------------------------------
# the papers' numbers beside ours

_PREFERRED = {"mean-std": ("mean-std", "single", "best"), "best": ("best", "single", "mean-std")}


def _reported_text(rep) -> str:
    """A published number as published: ``2.63 ± 0.09 test error (%)``, ``best of 3``, ..."""
    value = f"{rep.mean:.2f}" + (f" ± {rep.std:.2f}" if rep.std is not None else "")
    how = {"mean-std": f", mean of {rep.n}" if rep.n else "", "best": f", best of {rep.n}" if rep.n else ", best",
           "single": ""}[rep.aggregation]
    return f"{value} {rep.metric.replace('_', ' ')} (%{how})"


def with_paper(df: pd.DataFrame, methods: Mapping[str, Any]) -> pd.DataFrame:
    """``df`` with, in every cell whose method's recipe (``MethodInfo.reported``) has a published number for
    its (space, dataset) and the table's metric (``test_accuracy`` <- a reported test error or accuracy;
    ``valid_accuracy`` likewise), a ``paper`` entry: the value as an accuracy for display, the number as
    published, its aggregation, n and source; ``delta`` (ours - paper, in accuracy points) and
    ``outside_2std`` (|delta| > 2 standard deviations: ours over seeds where we have several, else the
    paper's; None when neither has one). A number reported for another evaluation setting than the column's
    (``Reported.eval_protocol`` against the runs' ``eval.protocol``) is never used; one for the same setting is
    preferred, then the one whose aggregation matches the table's protocol (mean-std for mean ± std, best for
    best-of-N). Rows with a swapped component
    are not the paper's recipe and get none. ``df.attrs["paper_sources"]`` lists every source used."""
    split = {"test_accuracy": "test", "valid_accuracy": "valid"}.get(df.attrs.get("metric", ""))
    out = df.copy()
    out.attrs = {**df.attrs}
    sources: list[str] = []
    if split is None:
        out.attrs["paper_sources"] = []
        out.attrs["paper_note"] = f"no paper numbers for metric {df.attrs.get('metric')!r} (test or valid accuracy)"
        return out
    protocol = df.attrs.get("protocol", "mean-std")
    for label in out.index:
        method = methods.get(df.attrs.get("recipes", {}).get(label, ""))
        if method is None:
            continue
        for column, where in df.attrs.get("columns", {}).items():
            cell = out.at[label, column]
            if not isinstance(cell, dict):
                continue
            setting = df.attrs.get("eval_protocols", {}).get(column, "")
            found = [r for r in method.reported if r.space == where["space"] and r.dataset == where["dataset"]
                     and r.as_accuracy()[0] == split and r.eval_protocol in ("", setting or r.eval_protocol)]
            if not found:
                continue
            rep = min(found, key=lambda r: (r.eval_protocol != setting, _PREFERRED[protocol].index(r.aggregation)))
            paper = rep.as_accuracy()[1]
            ours = cell["best"] if "best" in cell else cell["mean"]
            spread = cell.get("std") if cell.get("std") is not None else rep.std
            delta = ours - paper
            out.at[label, column] = {**cell, "paper": {
                "value": paper, "published": _reported_text(rep), "aggregation": rep.aggregation, "n": rep.n,
                "source": rep.source, "protocol": rep.protocol}, "delta": delta,
                "outside_2std": None if not spread else bool(abs(delta) > 2 * spread)}
            if rep.source not in sources:
                sources.append(rep.source)
    out.attrs["paper_sources"] = sources
    return out


# ----------------------------------------------------------------------------------------------
# export


def _cell_text(value: Any) -> str:
    if not isinstance(value, dict):
        return ""  # no run of this method on this (space, dataset)
    size = "".join(f", {value[k]:.2f}{unit}" for k, unit in (("params_m", "M params"), ("flops_m", "M FLOPs"))
                   if k in value)
    if "best" in value:
        return f"{value['best']:.2f} (best of {value['n']}{size})" + _paper_text(value)
    if "std" in value:
        spread = f" ± {value['std']:.2f}" if value["std"] is not None else ""
        return f"{value['mean']:.2f}{spread} (n={value['n']}{size})" + _paper_text(value)
    if "unit" in value:
        return f"{value['mean']:.4f} {value['unit']}"
    if "max_gib" in value:
        return f"{value['max_gib']:.2f} GiB ({value['kind']})"
    return json.dumps(value, ensure_ascii=False)


def _paper_text(value: dict) -> str:
    """`` · paper 97.37 (Δ -0.27)``, with `` *`` where ours is outside two standard deviations."""
    if "paper" not in value:
        return ""
    mark = " *" if value.get("outside_2std") else ""
    return f" · paper {value['paper']['value']:.2f} (Δ {value['delta']:+.2f}){mark}"


def _column_text(column: str, protocol: str) -> str:
    if column == SEARCH_COST:
        return "search cost (mean per run)"
    if column == PEAK_MEMORY:
        return "peak memory (max)"
    return f"{column} (best of N)" if protocol == "best" else column


def _json_cell(value: Any) -> Any:
    return value if isinstance(value, dict) else None


def export_header(df: pd.DataFrame, header: Mapping[str, str]) -> dict[str, str]:
    """What every export of ``df`` prints above the table (see :func:`export`): ``header`` completed with the
    table's protocol, metric, preset, versions, date, evaluation protocols, notes and paper sources."""
    protocol = df.attrs.get("protocol", "mean-std")
    meta: dict[str, Any] = {k: str(v) for k, v in header.items()}
    meta["protocol"] = PROTOCOL_LABELS[protocol]
    for key in ("metric", "preset"):
        if key in df.attrs:
            meta[key] = str(df.attrs[key])
    meta.setdefault("harness", __version__)
    if df.attrs.get("plugins"):
        meta.setdefault("plugins", ", ".join(f"{k} {v}" for k, v in df.attrs["plugins"].items()))
    meta.setdefault("date", datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    if df.attrs.get("eval_protocols"):
        meta["eval protocol"] = "; ".join(f"{c}: {p}" for c, p in df.attrs["eval_protocols"].items())
    for i, note in enumerate(df.attrs.get("notes", ()), start=1):
        meta[f"note {i}"] = note
    if "paper_sources" in df.attrs:
        meta["paper numbers"] = ("published values shown as accuracies (100 - a published error); Δ = ours - "
                                 "paper; * = ours outside two standard deviations (ours over seeds, else the "
                                 "paper's); the JSON keeps each number as published")
        for i, source in enumerate(df.attrs["paper_sources"], start=1):
            meta[f"paper source {i}"] = source
        if df.attrs.get("paper_note"):
            meta["paper note"] = df.attrs["paper_note"]
    return meta


def export(df: pd.DataFrame, fmt: str, *, header: Mapping[str, str], tablefmt: str | None = None) -> str:
    """The leaderboard ``df`` as text in ``fmt``, starting with ``header`` as the format's comments.

    ``header`` should name the command, the harness and plugin versions; the reporting protocol,
    metric, preset and notes come from ``df`` itself (overriding the caller's, so they cannot
    disagree); the harness version, the counted runs' plugin versions and the date (UTC) are added
    where the caller gave none. ``tablefmt`` picks tabulate's format for
    markdown (default "github"), latex ("latex") and html ("html").
    """
    if fmt not in EXPORT_FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}; valid choices: {', '.join(EXPORT_FORMATS)}")
    if tablefmt is not None and fmt not in TABULATE_DEFAULTS:
        raise HarnessError(f"a table format ({tablefmt!r}) applies to {', '.join(TABULATE_DEFAULTS)} exports, "
                           f"not {fmt}")
    if tablefmt is not None and tablefmt not in tabulate_formats:
        raise HarnessError(f"unknown table format {tablefmt!r}; valid choices: {', '.join(tabulate_formats)}")
    protocol = df.attrs.get("protocol", "mean-std")
    meta = export_header(df, header)

    if fmt == "json":
        rows = [{"method": method, **{col: _json_cell(row[col]) for col in df.columns}}
                for method, row in df.iterrows()]
        return json.dumps({"header": meta, "rows": rows}, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    # one header entry per line: newlines in a value would end the comment
    lines = [f"{k}: {' '.join(str(v).split())}" for k, v in meta.items()]
    text = df.apply(lambda col: col.map(_cell_text)).rename(columns=lambda c: _column_text(c, protocol))
    if fmt == "csv":
        return "".join(f"# {line}\n" for line in lines) + text.to_csv()
    table = tabulate(text, headers="keys", tablefmt=tablefmt or TABULATE_DEFAULTS[fmt], showindex=True)
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in lines) + table + "\n"
    # "-->" is the one sequence that would end an HTML comment early
    return "".join(f"<!-- {line.replace('-->', '-- >')} -->\n" for line in lines) + table + "\n"
