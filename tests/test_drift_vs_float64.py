"""benchmarks/drift_vs_float64.py: each float32 mode measured against the float64 eager step."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("drift_vs_float64", ROOT / "benchmarks" / "drift_vs_float64.py")
drift = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drift)


def test_float32_modes_against_the_float64_step(tmp_path):
    out = drift.main(["--method", "darts", "--space", "nb201", "--layers", "1", "--channels", "4", "--steps", "2",
                      "--modes", "eager", "fast", "--json", str(tmp_path / "d.json")])
    assert json.loads((tmp_path / "d.json").read_text())["modes"] == json.loads(json.dumps(out["modes"]))
    for mode in ("eager", "fast"):
        loss, params = out["modes"][mode]["loss_rel_err_per_step"], out["modes"][mode]["param_max_rel_err_per_step"]
        assert len(loss) == len(params) == 2
        # the first loss is one float32 forward of the float64 run's own (converted) weights: rounding only,
        # float32's epsilon is 1.2e-7; a run compared with itself in float64 would give exact zeros
        assert 0 < loss[0] < 1e-5, loss
        assert 0 < params[0] < 1e-3, params


def test_an_unknown_mode_is_named():
    with pytest.raises(SystemExit, match="mode 'graph'"):
        drift.main(["--method", "darts", "--space", "nb201", "--layers", "1", "--steps", "1", "--modes", "graph"])


def test_float64_modes_stay_within_float64_rounding_of_the_eager_step():
    """--dtype float64: ROME's two grouped passes are the eager K-loop's math over every step (a flipped
    choice would show as an error of order 1e-3, rounding is of order 1e-15)."""
    out = drift.main(["--method", "rome-v2", "--space", "s2", "--layers", "2", "--channels", "4", "--steps", "3",
                      "--dtype", "float64", "--modes", "eager", "fast", "fast:optimizer.group_ops=chosen"])
    assert out["dtype"] == "float64"
    assert out["modes"]["eager"]["param_max_rel_err_per_step"] == [0.0, 0.0, 0.0]  # the reference itself
    for mode in ("fast", "fast:optimizer.group_ops=chosen"):
        assert max(out["modes"][mode]["param_max_rel_err_per_step"]) < 1e-12, out["modes"][mode]
