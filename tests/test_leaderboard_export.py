"""Leaderboard aggregation and every export format."""

import io
import json

import pandas as pd
import pytest

from harness.errors import HarnessError
from harness.leaderboard import EXPORT_FORMATS, export, leaderboard
from tests.test_results_store import make

HEADER = {"command": "harness leaderboard --export X", "harness": "0.1.0", "protocol": "mean ± std over search seeds"}


def records():
    out = []
    for i, (method, space, seed, acc) in enumerate([
        ("darts", "s2", 0, 90.0), ("darts", "s2", 1, 92.0), ("darts", "s2", 2, 94.0),
        ("gdas", "s2", 0, 95.0), ("gdas", "s3", 0, 80.0), ("gdas", "s3", 1, 82.0),
    ]):
        r = make(seed=seed, method=method, space=space)
        r.space, r.id, r.status, r.metrics = space, i + 1, "completed", {"test_accuracy": acc}
        r.costs = {"search_s": 3600.0, "peak_rss_bytes": 2**30}
        out.append(r)
    return out


def test_mean_std_over_seeds():
    df = leaderboard(records())
    cell = df.loc["darts", "s2 / digits"]
    assert cell["mean"] == pytest.approx(92.0) and cell["std"] == pytest.approx(2.0) and cell["n"] == 3
    assert df.loc["gdas", "s2 / digits"] == {"mean": 95.0, "std": 0.0, "n": 1}
    assert df.loc["gdas", "search cost"]["mean"] == pytest.approx(1.0)


def test_latest_attempt_counts():
    recs = records()
    again = make(seed=0, method="darts", space="s2")
    again.space, again.id, again.status, again.attempt = "s2", 99, "completed", 2
    again.metrics = {"test_accuracy": 96.0}
    df = leaderboard(recs + [again])
    assert df.loc["darts", "s2 / digits"]["mean"] == pytest.approx((96 + 92 + 94) / 3)


def test_best_of_n_is_labelled():
    df = leaderboard(records(), protocol="best")
    assert df.loc["darts", "s2 / digits"] == {"best": 94.0, "n": 3}
    assert "best of 3" in export(df, "markdown", header=HEADER)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_format_has_the_header_and_the_rows(fmt):
    text = export(leaderboard(records()), fmt, header=HEADER)
    assert "harness leaderboard --export X" in text
    if fmt == "json":
        data = json.loads(text)
        assert data["header"]["protocol"].startswith("mean")
        darts = next(r for r in data["rows"] if r["method"] == "darts")
        assert darts["s2 / digits"] == {"mean": 92.0, "std": 2.0, "n": 3}
    elif fmt == "csv":
        df = pd.read_csv(io.StringIO(text), comment="#", index_col=0)
        assert df.loc["darts", "s2 / digits"] == "92.00 ± 2.00 (n=3)"
    else:
        assert "92.00 ± 2.00 (n=3)" in text


def test_errors():
    with pytest.raises(HarnessError, match="no completed runs"):
        leaderboard([])
    with pytest.raises(HarnessError, match="metric 'valid_accuracy'.*test_accuracy"):
        leaderboard(records(), metric="valid_accuracy")
    with pytest.raises(HarnessError, match="valid choices: markdown"):
        export(leaderboard(records()), "pdf", header=HEADER)
    mixed = records()
    mixed[0].preset = "quick"
    with pytest.raises(HarnessError, match="several presets"):
        leaderboard(mixed)
