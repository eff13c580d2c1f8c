"""Leaderboards from the store: one row per method, one column per (space, dataset), each cell
"mean ± std (n=K)" over search seeds (sample std, ddof=1; a single seed shows ± 0.00), plus the mean
search cost per run and the largest peak memory.

Only completed runs count; where a configuration was run more than once (``--force``) the latest
completed attempt counts. Runs of different presets are never mixed: ``preset=None`` means the one
preset present, and several present is an error naming them. ``protocol="best"`` reports the best
seed instead (the papers' best-of-N), labelled as such.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from tabulate import tabulate

from harness.api import RunRecord
from harness.errors import HarnessError

EXPORT_FORMATS = ("markdown", "csv", "latex", "html", "json")
PROTOCOLS = ("mean-std", "best")


def _frame(records: list[RunRecord], metric: str) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.status != "completed":
            continue
        cuda = r.device.startswith("cuda")
        rows.append({
            "method": r.method, "space": r.space, "dataset": r.dataset, "seed": r.seed, "preset": r.preset,
            "key": r.config_key, "attempt": r.attempt, "id": r.id or 0,
            "value": r.metrics.get(metric),
            "search_h": (r.costs.get("search_s") or 0.0) / 3600.0,
            "cost_unit": "GPU h" if cuda else "CPU wall h",
            "peak_gib": (r.costs.get("peak_mem_bytes") or r.costs.get("peak_rss_bytes") or 0) / 2**30,
            "mem_kind": "GPU" if cuda else "RSS",
        })
    return pd.DataFrame(rows)


def leaderboard(records: list[RunRecord], metric: str = "test_accuracy", protocol: str = "mean-std",
                preset: str | None = None) -> pd.DataFrame:
    if protocol not in PROTOCOLS:
        raise HarnessError(f"unknown protocol {protocol!r}; valid choices: {', '.join(PROTOCOLS)}")
    df = _frame(records, metric)
    if df.empty:
        raise HarnessError("the store has no completed runs; make some with `harness run --plugin NAME ...`")
    if df["value"].isna().all():
        present = sorted({k for r in records for k, v in r.metrics.items() if isinstance(v, (int, float))})
        raise HarnessError(f"no completed run has metric {metric!r}; metrics present: {', '.join(present) or '(none)'}")
    presets = sorted(df["preset"].unique())
    if preset is None:
        if len(presets) > 1:
            raise HarnessError(f"the store holds runs of several presets ({', '.join(presets)}); choose one with --preset")
        preset = presets[0]
    elif preset not in presets:
        raise HarnessError(f"no completed runs of preset {preset!r}; presets present: {', '.join(presets)}")
    df = df[(df["preset"] == preset) & df["value"].notna()]
    # latest completed attempt per configuration, then one value per (method, space, dataset, seed)
    df = df.sort_values(["attempt", "id"]).groupby("key", as_index=False).last()
    df = df.sort_values("id").groupby(["method", "space", "dataset", "seed"], as_index=False).last()

    out_rows = []
    for method, group in df.groupby("method", sort=True):
        row: dict[str, Any] = {"method": method}
        for (space, dataset), cell in group.groupby(["space", "dataset"], sort=True):
            values = cell["value"].astype(float)
            col = f"{space} / {dataset}"
            n = len(values)
            if protocol == "best":
                row[col] = {"best": float(values.max()), "n": n}
            else:
                std = float(values.std(ddof=1)) if n > 1 else 0.0
                row[col] = {"mean": float(values.mean()), "std": std, "n": n}
        units = sorted(group["cost_unit"].unique())
        row["search cost"] = {"mean": float(group["search_h"].mean()), "unit": "/".join(units)}
        row["peak memory"] = {"max_gib": float(group["peak_gib"].max()), "kind": "/".join(sorted(group["mem_kind"].unique()))}
        out_rows.append(row)
    table = pd.DataFrame(out_rows).set_index("method")
    table.attrs.update({"metric": metric, "protocol": protocol, "preset": preset})
    return table


def _cell_text(value: Any) -> str:
    if not isinstance(value, dict):
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    if "best" in value:
        return f"{value['best']:.2f} (best of {value['n']})"
    if "mean" in value and "std" in value:
        return f"{value['mean']:.2f} ± {value['std']:.2f} (n={value['n']})"
    if "unit" in value:
        return f"{value['mean']:.4f} {value['unit']}"
    if "max_gib" in value:
        return f"{value['max_gib']:.2f} GiB ({value['kind']})"
    return json.dumps(value)


def _text_table(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(lambda col: col.map(_cell_text))


def export(df: pd.DataFrame, fmt: str, *, header: dict[str, str], tablefmt: str | None = None) -> str:
    if fmt not in EXPORT_FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}; valid choices: {', '.join(EXPORT_FORMATS)}")
    header = {**header, "preset": df.attrs.get("preset", ""), "metric": df.attrs.get("metric", header.get("metric", ""))}
    lines = [f"{k}: {v}" for k, v in header.items()]
    if fmt == "json":
        rows = [{"method": method, **{col: row[col] for col in df.columns if isinstance(row[col], dict)}}
                for method, row in df.iterrows()]
        return json.dumps({"header": header, "rows": rows}, indent=2, ensure_ascii=False)
    text = _text_table(df)
    if fmt == "csv":
        return "".join(f"# {line}\n" for line in lines) + text.to_csv()
    table = tabulate(text, headers="keys", tablefmt=tablefmt or {"markdown": "github", "latex": "latex",
                                                                  "html": "html"}[fmt], showindex=True)
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in lines) + table + "\n"
    return "<!--\n" + "".join(f"  {line}\n" for line in lines) + "-->\n" + table + "\n"
