"""runtime.fast_recompute: the fused cell's weighted sums recompute their inputs (the units' closing
BatchNorm, their concatenation U) in backward instead of keeping U. References: the fused step without it
(the same operations, so the same trajectory), the eager cell, and the tensors autograd keeps, counted
with saved-tensor hooks."""

import contextlib

import pytest
import torch

from harness.nn.cells import set_fast
from tests.searchkit import method_parts, random_batches


def _run(method, space_name, recompute, steps=3, fast=True):
    net, sampler, _, opt = method_parts(method, space_name, steps_per_epoch=6)
    opt.set_progress(0, 1)
    set_fast(net, fast, recompute=recompute)
    data = random_batches(3)
    torch.manual_seed(7)
    losses = [float(opt.step(net, *data[i % 3]).train_loss) for i in range(steps)]
    buffers = {n: b.detach().clone() for n, b in net.named_buffers()}
    return losses, [p.detach().clone() for p in net.parameters()], buffers


@pytest.mark.parametrize("method, space_name", [("darts", "s2"), ("darts-2nd", "s3"), ("darts", "nb201"),
                                                ("rome-v2", "s2"), ("entrannas", "s2")])
def test_recomputed_sums_give_the_same_trajectory_and_running_statistics(method, space_name):
    """Float64, 3 steps: losses, every parameter and every buffer (BatchNorm running statistics and batch
    counters, updated once per forward, not again by the recompute) as without recomputing, and as the
    eager cell. ROME: its K=7 samples as one grouped pass (per-sample BatchNorm in the recompute too)."""
    torch.set_default_dtype(torch.float64)
    try:
        plain = _run(method, space_name, False)
        again = _run(method, space_name, True)
        eager = _run(method, space_name, False, fast=False)
    finally:
        torch.set_default_dtype(torch.float32)
    assert again[0] == pytest.approx(plain[0], rel=1e-12, abs=0)
    for a, b in zip(again[1], plain[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert again[2].keys() == plain[2].keys()
    for name in plain[2]:
        torch.testing.assert_close(again[2][name], plain[2][name], rtol=1e-12, atol=1e-14, msg=name)
    assert again[0] == pytest.approx(eager[0], rel=1e-10)
    if method.startswith("darts"):  # mixed cells: every op's BatchNorm counted once per forward, as eagerly
        counters = {n: b for n, b in eager[2].items() if n.endswith("num_batches_tracked")}
        assert counters and all(int(again[2][n]) == int(c) for n, c in counters.items())


def _saved_bytes(recompute, captured=False):
    from harness.nn import groups

    net, _, _, _ = method_parts("darts", "s2")
    set_fast(net, True, recompute=recompute)
    seen = {}

    def pack(t):
        seen.setdefault(t.untyped_storage().data_ptr(), (t.untyped_storage().nbytes(), t.dim()))
        return t

    x = random_batches(1, size=16)[0][0].x
    form = groups.as_captured() if captured else contextlib.nullcontext()
    with form, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x).sum()
    return sum(b for b, _ in seen.values()), sum(b for b, d in seen.values() if d == 3)


def test_recomputing_keeps_no_copy_of_the_op_outputs():
    """Without it, each pass's bmm keeps U (B, units, C*H*W): a copy of every op output. With it, backward
    keeps no such tensor (only the small (B, targets, units) weights are 3-d) and fewer bytes in all. The
    3-d count picks out U in the form a CUDA graph captures (uncaptured, torch.matmul's 1x1 products keep
    3-d weight copies too); the bytes in both forms."""
    total, _ = _saved_bytes(False)
    total_rc, _ = _saved_bytes(True)
    assert total_rc < total, (total, total_rc)
    total, kept_u = _saved_bytes(False, captured=True)
    total_rc, kept_u_rc = _saved_bytes(True, captured=True)
    assert kept_u > 0 and kept_u_rc < kept_u / 100  # what stays 3-d: the (B, targets, units) weights
    assert total_rc < total, (total, total_rc, kept_u)


def test_step_saved_script_counts_each_mode(tmp_path):
    """benchmarks/step_saved.py (the figures in BENCHMARKS.md) at toy size: every mode counted, recomputing
    keeps less, and the JSON says how it was run."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "step_saved.py"
    spec = importlib.util.spec_from_file_location("step_saved", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "saved.json"
    mod.main(["--method", "darts", "--space", "darts", "--batch", "4", "--channels", "4", "--layers", "3",
              "--resolution", "16", "--json", str(out)])
    rec = json.loads(out.read_text())
    modes = rec["modes"]
    assert set(modes) == {"eager", "fast", "fast-recompute"}
    assert 0 < modes["fast-recompute"]["saved_gib"] < modes["fast"]["saved_gib"]
    assert rec["command"].startswith("python benchmarks/step_saved.py --method darts") and rec["layers"] == 3
    # as a CUDA graph captures it: the 1x1 products keep their operands only (no weight copy per image)
    captured = mod.main(["--method", "darts", "--space", "darts", "--batch", "4", "--channels", "4", "--layers",
                         "3", "--resolution", "16", "--modes", "fast", "--as-captured"])
    assert captured["as_captured"] is True and rec["as_captured"] is False
    assert 0 < captured["modes"]["fast"]["saved_bytes"] < modes["fast"]["saved_bytes"]


def test_recomputed_sums_under_a_graphed_step():
    """With GraphedStep (its capture replaced by a re-run, as in test_graphs): the recomputation happens in
    the captured form and the trajectory is the plain optimizer's in that form, exactly."""
    import contextlib

    from harness.nn import groups
    from tests.test_graphs import ReplayByRerun

    data = random_batches(4)

    def trajectory(wrap):
        net, sampler, _, opt = method_parts("darts", "s2", epochs=1)
        set_fast(net, True, recompute=True)
        opt.set_progress(0, 1)
        torch.manual_seed(11)
        step = ReplayByRerun(opt) if wrap else opt
        with contextlib.nullcontext() if wrap else groups.as_captured():
            losses = [float(step.step(net, *data[i % 4]).train_loss) for i in range(6)]
        return losses, step

    plain, _ = trajectory(False)
    graphed, step = trajectory(True)
    assert graphed == plain and (step.captures, step.replays, step.eager_steps) == (1, 3, 3)
