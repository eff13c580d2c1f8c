"""Leaderboards: mean ± std over seeds, the latest-attempt rule, best-of-N, costs, every export format
parsed back, and the errors a user meets."""

import io
import json
import math
import statistics

import pandas as pd
import pytest

from harness.api import RunRecord
from harness.errors import HarnessError
from harness.leaderboard import EXPORT_FORMATS, PROTOCOL_LABELS, export, leaderboard
from harness.store import ResultStore, config_key

HEADER = {"command": "harness leaderboard --export markdown", "harness": "0.1.0",
          "plugins": "nas-harness 0.1.0, harness-rome 0.2.0", "protocol": PROTOCOL_LABELS["mean-std"],
          "date": "2026-01-02"}

DARTS_S2 = [97.12, 96.85, 97.40, 97.03]  # seeds 0-3


def run(method, space, seed, acc, *, dataset="digits", preset="smoke", status="completed", device="cpu",
        components=None, costs=None, **extra) -> RunRecord:
    config = {"method": method, "space": space, "dataset": dataset, "seed": seed, "preset": preset,
              "components": components or {"sampler": "softmax", "selector": "argmax"}, **extra}
    return RunRecord(method=method, space=space, dataset=dataset, seed=seed, preset=preset, config=config,
                     config_key=config_key(config), status=status, metrics={"test_accuracy": acc, "source": "retrain"},
                     costs=costs if costs is not None else {"search_s": 1800.0 * (seed + 1), "peak_rss_bytes": 2**30},
                     plugins={"nas-harness": "0.1.0"}, device=device)


def grid() -> list[RunRecord]:
    out = [run("darts", "s2", seed, acc) for seed, acc in enumerate(DARTS_S2)]
    out += [run("darts", "s3", 0, 96.0)]
    out += [run("gdas", "s2", 0, 96.5), run("gdas", "s2", 1, 96.1)]
    for i, r in enumerate(out, start=1):
        r.id = i
    return out


def test_mean_std_over_seeds():
    df = leaderboard(grid())
    assert list(df.index) == ["darts", "gdas"]
    assert list(df.columns) == ["s2 / digits", "s3 / digits", "search cost", "peak memory"]
    cell = df.loc["darts", "s2 / digits"]
    assert cell["n"] == 4
    assert cell["mean"] == pytest.approx(97.10)
    assert cell["std"] == pytest.approx(statistics.stdev(DARTS_S2))  # sample std, ddof=1
    assert cell["std"] == pytest.approx(0.229347, abs=1e-6)
    assert df.loc["gdas", "s2 / digits"]["std"] == pytest.approx(0.282843, abs=1e-6)
    assert df.loc["darts", "s3 / digits"] == {"mean": 96.0, "std": None, "n": 1}  # one seed: no spread
    assert isinstance(df.loc["gdas", "s3 / digits"], float) and math.isnan(df.loc["gdas", "s3 / digits"])
    assert df.attrs["protocol"] == "mean-std" and df.attrs["preset"] == "smoke"
    assert "97.10 ± 0.23 (n=4)" in export(df, "markdown", header=HEADER)


def test_costs_are_labelled_hours_and_gib():
    df = leaderboard(grid())
    # darts: seeds 0-3 on s2 (0.5, 1, 1.5, 2 h) and seed 0 on s3 (0.5 h): mean per run
    assert df.loc["darts", "search cost"] == {"mean": pytest.approx(1.1), "unit": "wall h (CPU)", "n": 5}
    assert df.loc["darts", "peak memory"] == {"max_gib": 1.0, "kind": "CPU RSS"}
    gpu = [run("rome", "s2", s, 97.0, device="cuda:NVIDIA H100",
               costs={"search_s": 7200.0, "peak_mem_bytes": (s + 1) * 2**30}) for s in range(3)]
    df = leaderboard(gpu)
    assert df.loc["rome", "search cost"] == {"mean": 2.0, "unit": "GPU h", "n": 3}
    assert df.loc["rome", "peak memory"] == {"max_gib": 3.0, "kind": "GPU"}
    text = export(df, "markdown", header=HEADER)
    assert "search cost (mean per run)" in text and "2.0000 GPU h" in text and "3.00 GiB (GPU)" in text


def test_latest_completed_attempt_counts(tmp_path):
    with ResultStore(tmp_path / "runs.sqlite") as store:
        for seed, acc in ((0, 90.0), (1, 92.0), (0, 96.0)):  # seed 0 forced again: 96 replaces 90
            r = store.start(run("darts", "s2", seed, acc))
            store.finish(r)
        store.fail(store.start(run("darts", "s2", 1, 0.0)), "RuntimeError: attempt 2 crashed")
        store.start(run("darts", "s2", 1, 0.0))  # attempt 3 still running
        records = store.records(None)
        # a changed --set on one seed is also "the same seed run again": the latest counts, and it is noted
        store.finish(store.start(run("darts", "s2", 1, 80.0, search={"epochs": 5})))
        changed = store.records(None)
    assert [(r.seed, r.attempt, r.status) for r in records] == [
        (0, 1, "completed"), (1, 1, "completed"), (0, 2, "completed"), (1, 2, "failed"), (1, 3, "running")]
    df = leaderboard(records)
    assert df.loc["darts", "s2 / digits"] == {"mean": 94.0, "std": pytest.approx(math.sqrt(8)), "n": 2}
    assert df.attrs["notes"] == []
    df = leaderboard(changed)
    assert df.loc["darts", "s2 / digits"]["mean"] == pytest.approx(88.0)
    (note,) = df.attrs["notes"]
    assert "darts on s2 / digits" in note and "2 different configurations" in note
    assert "note 1: darts on s2 / digits" in export(df, "csv", header=HEADER)


def test_best_of_n_protocol_is_labelled():
    df = leaderboard(grid(), protocol="best")
    assert df.loc["darts", "s2 / digits"] == {"best": 97.40, "n": 4}
    assert df.loc["gdas", "s2 / digits"] == {"best": 96.5, "n": 2}
    assert df.attrs["protocol"] == "best"
    text = export(df, "markdown", header=HEADER)  # HEADER says mean ± std: the table's protocol wins
    assert "<!-- protocol: best of N seeds (papers' convention) -->" in text and "mean ± std" not in text
    assert "s2 / digits (best of N)" in text and "97.40 (best of 4)" in text
    data = json.loads(export(df, "json", header=HEADER))
    assert data["header"]["protocol"] == PROTOCOL_LABELS["best"]
    assert data["rows"][0]["s2 / digits"] == {"best": 97.40, "n": 4}
    assert "best" not in export(leaderboard(grid()), "markdown", header=HEADER)


def test_swapped_components_get_their_own_row():
    records = grid() + [run("darts", "s2", s, 97.5, components={"sampler": "softmax", "selector": "pt"})
                        for s in range(2)]
    df = leaderboard(records)
    assert list(df.index) == ["darts [selector=argmax]", "darts [selector=pt]", "gdas"]
    assert df.loc["darts [selector=argmax]", "s2 / digits"]["n"] == 4
    assert df.loc["darts [selector=pt]", "s2 / digits"] == {"mean": pytest.approx(97.5), "std": pytest.approx(0.0),
                                                           "n": 2}


def test_presets_are_never_mixed():
    records = grid() + [run("darts", "s2", 0, 50.0, preset="quick")]
    with pytest.raises(HarnessError, match=r"several presets \(quick, smoke\).*--preset"):
        leaderboard(records)
    assert leaderboard(records, preset="smoke").loc["darts", "s2 / digits"]["n"] == 4
    quick = leaderboard(records, preset="quick")
    assert list(quick.index) == ["darts"] and quick.attrs["preset"] == "quick"
    with pytest.raises(HarnessError, match="no completed runs of preset 'paper'; presets present: quick, smoke"):
        leaderboard(records, preset="paper")


def test_only_completed_runs_count():
    records = grid() + [run("darts", "s2", 7, 10.0, status="failed"), run("darts", "s2", 8, 10.0, status="running")]
    assert leaderboard(records).loc["darts", "s2 / digits"]["n"] == 4


# ----------------------------------------------------------------------------------------------
# exports


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_starts_with_the_header(fmt):
    text = export(leaderboard(grid()), fmt, header=HEADER)
    first = text.splitlines()[0]
    if fmt == "json":
        assert list(json.loads(text)) == ["header", "rows"]
        return
    prefix = {"markdown": "<!-- ", "html": "<!-- ", "latex": "% ", "csv": "# "}[fmt]
    assert first == f"{prefix}command: harness leaderboard --export markdown" + (" -->" if "<" in prefix else "")
    comments = [line for line in text.splitlines() if line.startswith(prefix)]
    body = "\n".join(comments)
    for part in ("harness: 0.1.0", "plugins: nas-harness 0.1.0, harness-rome 0.2.0",
                 "protocol: mean ± std over search seeds", "date: 2026-01-02", "metric: test_accuracy",
                 "preset: smoke"):
        assert part in body, part


def test_markdown_has_header_comment_and_rows():
    text = export(leaderboard(grid()), "markdown", header=HEADER)
    assert text.startswith("<!-- command: harness leaderboard --export markdown -->\n")
    rows = [line for line in text.splitlines() if line.startswith("| darts")]
    assert rows == [rows[0]] and "97.10 ± 0.23 (n=4)" in rows[0] and "96.00 (n=1)" in rows[0] and "± 0.00" not in rows[0]
    assert "|----" in text  # github format
    piped = export(leaderboard(grid()), "markdown", header=HEADER, tablefmt="pipe")
    assert "|:-----" in piped


def test_csv_parses_back():
    text = export(leaderboard(grid()), "csv", header=HEADER)
    df = pd.read_csv(io.StringIO(text), comment="#", index_col="method")
    assert list(df.index) == ["darts", "gdas"]
    assert df.loc["darts", "s2 / digits"] == "97.10 ± 0.23 (n=4)"
    assert df.loc["gdas", "s2 / digits"] == "96.30 ± 0.28 (n=2)"
    assert pd.isna(df.loc["gdas", "s3 / digits"])


def test_json_parses_back_with_numbers():
    data = json.loads(export(leaderboard(grid()), "json", header=HEADER))
    assert data["header"]["command"] == HEADER["command"] and data["header"]["metric"] == "test_accuracy"
    darts, gdas = data["rows"]
    assert darts["method"] == "darts"
    cell = darts["s2 / digits"]
    assert cell["n"] == 4 and cell["mean"] == pytest.approx(97.10)
    assert cell["std"] == pytest.approx(statistics.stdev(DARTS_S2))
    assert gdas["s3 / digits"] is None  # every row has every column
    assert darts["search cost"]["unit"] == "wall h (CPU)" and darts["peak memory"]["max_gib"] == 1.0


def test_latex_and_html():
    latex = export(leaderboard(grid()), "latex", header=HEADER)
    assert latex.startswith("% command:") and "\\begin{tabular}" in latex and "97.10 ± 0.23 (n=4)" in latex
    html = export(leaderboard(grid()), "html", header=HEADER)
    assert html.startswith("<!-- command:") and "<table>" in html and "<td>darts" in html


def test_header_is_completed_and_kept_inside_comments():
    header = {"command": "harness leaderboard --export html --note 'a --> b'\nsecond line"}
    html = export(leaderboard(grid()), "html", header=header)
    comments = html.split("<table>")[0]
    assert comments.count("-->") == comments.count("<!--") == len(comments.splitlines())
    assert "harness: " in comments and "plugins: nas-harness 0.1.0" in comments and "date: 20" in comments
    assert "--export html" in comments  # ordinary double dashes are left alone


# ----------------------------------------------------------------------------------------------
# errors


def test_unknown_metric_names_the_metrics_present():
    with pytest.raises(HarnessError, match=r"metric 'valid_accuracy' is in no completed run; metrics present: "
                                           r"test_accuracy"):
        leaderboard(grid(), metric="valid_accuracy")
    with pytest.raises(HarnessError, match=r"metric 'source' is not a number \('retrain'\)"):
        leaderboard(grid(), metric="source")


def test_no_completed_runs_says_how_to_make_some():
    for records in ([], [run("darts", "s2", 0, 90.0, status="failed")]):
        with pytest.raises(HarnessError, match=r"no completed runs.*harness run"):
            leaderboard(records)


def test_unknown_format_protocol_and_table_format():
    df = leaderboard(grid())
    with pytest.raises(HarnessError, match="unknown export format 'pdf'; valid choices: markdown, csv, latex, html, "
                                           "json"):
        export(df, "pdf", header=HEADER)
    with pytest.raises(HarnessError, match="unknown protocol 'median'; valid choices: mean-std, best"):
        leaderboard(grid(), protocol="median")
    with pytest.raises(HarnessError, match="unknown table format 'fancy'.*github"):
        export(df, "markdown", header=HEADER, tablefmt="fancy")
    with pytest.raises(HarnessError, match="applies to markdown, latex, html"):
        export(df, "csv", header=HEADER, tablefmt="pipe")


def test_mixed_devices_and_plugin_versions_are_spelled_out():
    a = run("darts", "s2", 0, 90.0, device="cuda:NVIDIA H100", costs={"search_s": 3600.0})
    b = run("darts", "s2", 1, 92.0, costs={"search_s": 3600.0})
    b.plugins = {"nas-harness": "0.2.0"}
    df = leaderboard([a, b])
    assert df.loc["darts", "search cost"]["unit"] == "h (GPU and CPU mixed)"
    assert isinstance(df.loc["darts", "peak memory"], float)  # no memory figures recorded: blank, not 0
    assert df.attrs["plugins"] == {"nas-harness": "0.1.0/0.2.0"}
    assert "<!-- plugins: nas-harness 0.1.0/0.2.0 -->" in export(df, "markdown", header={"command": "x"})


def test_op_sets_and_eval_protocols_get_their_own_columns_and_header():
    """A 7-op and an 8-op search of the DARTS space are never averaged into one column; the header
    names each column's evaluation protocol, and a column mixing protocols is split by protocol."""
    def rec(method, space, seed, acc, op_set, protocol):
        return run(method, space, seed, acc, dataset="cifar10", search={"op_set": op_set},
                   eval={"protocol": protocol})

    records = [rec("darts", "darts", 0, 97.0, "all", "darts"), rec("darts", "darts", 1, 97.2, "all", "darts"),
               rec("rome-v2", "darts", 0, 97.4, "no-none", "darts"),
               rec("rome-v2", "s2", 0, 96.0, "all", "robustdarts"), rec("rome-v2", "s2", 1, 97.0, "all", "darts")]
    for i, r in enumerate(records, start=1):
        r.id = i
    df = leaderboard(records)
    assert list(df.columns)[:4] == ["darts / cifar10", "darts [no-none] / cifar10", "s2 / cifar10 (darts)",
                                    "s2 / cifar10 (robustdarts)"]
    assert df.loc["darts", "darts / cifar10"]["n"] == 2
    assert df.loc["rome-v2", "darts [no-none] / cifar10"] == {"mean": 97.4, "std": None, "n": 1}
    assert isinstance(df.loc["rome-v2", "darts / cifar10"], float)  # not averaged with the 8-op runs
    text = export(df, "markdown", header=HEADER)
    assert "eval protocol: darts / cifar10: darts; darts [no-none] / cifar10: darts;" in text
    assert "s2 / cifar10 (robustdarts): robustdarts" in text


def test_cells_carry_the_networks_size_and_one_seed_shows_no_spread():
    """Each cell's params/FLOPs are the mean over its seeds of what the records hold (inputs here), in
    millions; a single seed prints its value with n=1 and no spread."""
    records = [run("darts", "s2", s, acc) for s, acc in ((0, 97.0), (1, 97.2))] + [run("gdas", "s2", 0, 96.5)]
    for r, params, flops in zip(records, (3_349_342, 3_349_342, 2_500_000), (528e6, 530e6, 400e6)):
        r.metrics.update(params=params, flops=flops)
    df = leaderboard(records)
    cell = df.loc["darts", "s2 / digits"]
    assert cell["params_m"] == pytest.approx(3.349342) and cell["flops_m"] == pytest.approx(529.0)
    text = export(df, "markdown", header=HEADER)
    assert "97.10 ± 0.14 (n=2, 3.35M params, 529.00M FLOPs)" in text
    assert "96.50 (n=1, 2.50M params, 400.00M FLOPs)" in text and "± 0.00" not in text
    assert json.loads(export(df, "json", header=HEADER))["rows"][1]["s2 / digits"]["std"] is None


def test_with_paper_puts_the_published_number_beside_ours():
    """Published errors are kept as published and shown as accuracies (100 - error); the number whose
    aggregation matches the table's protocol is chosen; the two-standard-deviation mark uses our spread
    over seeds, or the paper's when we have one seed; a swapped recipe gets no paper number."""
    from harness.api import MethodInfo, Reported
    from harness.leaderboard import with_paper

    darts = MethodInfo(name="darts", sampler="softmax", optimizer="first-order", selector="argmax", cell="mixed",
                       reported=(Reported("s2", "digits", "test_error", 2.76, "paper A, Table 1", std=0.09, n=4,
                                          aggregation="mean-std"),
                                 Reported("s2", "digits", "test_error", 2.50, "paper A, Table 2", n=4,
                                          aggregation="best"),
                                 Reported("s3", "digits", "test_accuracy", 97.5, "paper B, Table 3", std=0.5)))
    gdas = MethodInfo(name="gdas", sampler="gumbel", optimizer="first-order", selector="pair-top2",
                      cell="single-path", reported=(Reported("s2", "digits", "test_error", 3.5, "paper C"),))
    df = with_paper(leaderboard(grid()), {"darts": darts, "gdas": gdas})
    cell = df.loc["darts", "s2 / digits"]  # ours: mean 97.10, sample std 0.229347 over 4 seeds
    assert cell["paper"]["value"] == pytest.approx(97.24) and cell["paper"]["source"] == "paper A, Table 1"
    assert cell["delta"] == pytest.approx(97.10 - 97.24) and cell["outside_2std"] is False
    assert cell["paper"]["published"] == "2.76 ± 0.09 test error (%, mean of 4)"
    one = df.loc["darts", "s3 / digits"]  # ours: 96.0 from one seed; the paper's std 0.5 sets the band
    assert one["delta"] == pytest.approx(-1.5) and one["outside_2std"] is True
    g = df.loc["gdas", "s2 / digits"]  # ours 96.30 (two seeds, std 0.2828) vs 100 - 3.5
    assert g["delta"] == pytest.approx(96.3 - 96.5) and g["outside_2std"] is False
    text = export(df, "markdown", header=HEADER)
    assert "97.10 ± 0.23 (n=4) · paper 97.24 (Δ -0.14)" in text and "96.00 (n=1) · paper 97.50 (Δ -1.50) *" in text
    assert "paper source 1: paper A, Table 1" in text
    assert json.loads(export(df, "json", header=HEADER))["rows"][0]["s2 / digits"]["paper"]["value"] == \
        pytest.approx(97.24)
    best = with_paper(leaderboard(grid(), protocol="best"), {"darts": darts})
    assert best.loc["darts", "s2 / digits"]["paper"]["source"] == "paper A, Table 2"  # the best-of-N number
    swapped = grid() + [run("darts", "s2", 0, 97.5, components={"sampler": "softmax", "selector": "pt"})]
    df = with_paper(leaderboard(swapped), {"darts": darts})
    assert "paper" not in df.loc["darts [selector=pt]", "s2 / digits"]
    assert "paper" not in df.loc["darts [selector=argmax]", "s2 / digits"]  # labelled by a swap as well


def test_with_paper_uses_only_the_number_of_the_runs_evaluation_setting():
    """A paper that reports one cell under two evaluation settings (ROME's Table 6: RobustDARTS's and SDARTS's)
    is read by setting: runs evaluated with eval.protocol=darts get the SDARTS number, robustdarts runs the
    RobustDARTS number, and a column of another setting gets neither."""
    from harness.api import MethodInfo, Reported
    from harness.leaderboard import with_paper

    rome = MethodInfo(name="rome-v2", sampler="gumbel-topology", optimizer="first-order", selector="argmax",
                      cell="single-path",
                      reported=(Reported("s2", "digits", "test_error", 2.95, "T6 dagger", n=3, aggregation="best",
                                         eval_protocol="robustdarts"),
                                Reported("s2", "digits", "test_error", 2.41, "T6 double dagger", n=3,
                                         aggregation="best", eval_protocol="darts")))
    for setting, source in (("darts", "T6 double dagger"), ("robustdarts", "T6 dagger")):
        records = [run("rome-v2", "s2", s, 97.0 + s, eval={"protocol": setting}) for s in (0, 1)]
        df = with_paper(leaderboard(records), {"rome-v2": rome})
        cell = df.loc["rome-v2", "s2 / digits"]
        assert cell["paper"]["source"] == source and cell["paper"]["value"] == pytest.approx(
            100 - (2.41 if setting == "darts" else 2.95))
    other = [run("rome-v2", "s2", 0, 97.0, eval={"protocol": "nas-bench"})]
    assert "paper" not in with_paper(leaderboard(other), {"rome-v2": rome}).loc["rome-v2", "s2 / digits"]
