"""benchmarks/single_path_groups.py: the op-run counts behind BENCHMARKS.md's explanation of why the
single-path methods have no fast path yet."""

import importlib.util
import json
from pathlib import Path

import pytest

from harness.errors import HarnessError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "single_path_groups.py"


def _script():
    spec = importlib.util.spec_from_file_location("single_path_groups", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# GDAS searches the 8-op DARTS space, ROME its 7-op S0 (the recipes' op sets)
@pytest.mark.parametrize("method, k, active, n_ops", [("gdas", 1, 14, 8), ("rome-v2", 3, 8, 7), ("rome-v1", 3, 8, 7)])
def test_counts_follow_the_samplers(tmp_path, method, k, active, n_ops):
    out = tmp_path / "groups.json"
    _script().main(["--method", method, "--space", "darts", "--samples", str(k), "--passes", "3",
                    "--concentration", "0", "8", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    for row in rows:
        assert row["sequential"] == k * active  # GDAS runs all 14 edges; ROME keeps 2 inputs of each of 4 nodes
        assert row["by_source_op"] <= row["by_edge_op"] <= row["sequential"]
    assert json.loads(out.read_text())["ops_per_edge"] == n_ops
    assert rows[0]["p_max_op"] == pytest.approx(1 / n_ops, abs=1e-3)  # concentration 0: uniform
    assert rows[1]["p_max_op"] > 0.99
    if k > 1:  # near-certain architectures: the K samples coincide on (almost) every edge
        assert rows[1]["by_edge_op"] <= active + 1


def test_refuses_a_method_that_is_not_single_path():
    with pytest.raises(HarnessError, match="'darts' does not sample a single path"):
        _script().main(["--method", "darts", "--space", "darts", "--passes", "1"])
