"""The baselines of issue 16 keep a supernet and a weight optimizer DARTS-PT's selector can retune, so
``--selector pt`` runs on it: one smoke search per method, perturbation-based selection instead of its own."""

from click.testing import CliRunner

from harness.cli import cli
from harness.store import ResultStore
from tests.searchkit import SHORT_RETRAIN

METHODS = ("pc-darts", "drnas")  # edge weights; tensors that change mid-search


def test_the_new_baselines_run_with_the_perturbation_selector(tmp_path):
    store = tmp_path / "s.sqlite"
    out = CliRunner().invoke(cli, ["run", "--plugin", ",".join(METHODS), "--space", "s2", "--selector", "pt",
                                   "--store", str(store), "--preset", "smoke", "--quiet", *SHORT_RETRAIN],
                           catch_exceptions=False)
    assert out.exit_code == 0, out.output
    with ResultStore(store) as s:
        records = s.records(status=None)
    assert sorted(r.method for r in records) == sorted(METHODS)
    assert all(r.status == "completed" and r.config["components"]["selector"] == "pt" for r in records)
