"""Issue 17 follow-up: ROME's grouped pass with ``optimizer.group_ops="chosen"`` runs, per edge, only the ops
its K samples chose, each once on the blocks of the samples that chose it. The eager K-loop (one sampled
architecture per forward, ``runtime.fast=false``) is the reference: the same trajectory in float64,
BatchNorm running statistics included (an op no sample chose is not run, so its statistics stay as the
eager loop leaves them, unlike the all-op pass), each chosen op called once per pass, and a CUDA graph
refused by name (the pass reads the sampled ops on the host)."""

import pytest
import torch

from harness.graphs import why_not_graphed
from harness.nn.cells import SinglePathBody, set_fast
from tests.searchkit import method_parts, random_batches


def _run(method, space_name, fast, steps=3, **sets):
    net, sampler, cell, opt = method_parts(method, space_name, steps_per_epoch=6)
    opt.config = type(opt.config)(**{**opt.config.__dict__, **sets})
    opt.set_progress(0, 1)
    set_fast(net, fast)
    data = random_batches(3)
    torch.manual_seed(7)
    losses = [float(opt.step(net, *data[i % 3]).train_loss) for i in range(steps)]
    state = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    return losses, state, opt.grouped(net)


def _worst(a: dict, b: dict) -> tuple[float, str]:
    rel = {k: float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-30)) for k in a}
    key = max(rel, key=rel.get)
    return rel[key], key


@pytest.mark.parametrize("method, space_name, sets", [
    ("rome-v2", "darts", {}), ("rome-v1", "s3", {}), ("rome-v2", "nb201", {}),
    ("rome-v2", "s2", {"sample_chunk": 3}),  # passes of 3, 3 and 1 samples
])
def test_chosen_ops_pass_matches_the_eager_k_loop_in_float64(method, space_name, sets):
    """3 steps in float64: losses and every floating tensor of the state (weights, arch parameters,
    BatchNorm running means and variances) agree with the eager loop to 1e-12. The all-op grouped pass
    leaves different running statistics (it runs every op), which shows the comparison can fail (checked on
    darts)."""
    discriminate = (method, space_name) == ("rome-v2", "darts")  # once is enough to show it can fail
    torch.set_default_dtype(torch.float64)
    try:
        le, se, g_eager = _run(method, space_name, False)
        lc, sc, g_chosen = _run(method, space_name, True, group_ops="chosen", **sets)
        sa = _run(method, space_name, True, group_ops="all", **sets)[1] if discriminate else None
    finally:
        torch.set_default_dtype(torch.float32)
    assert g_eager is False and g_chosen is True
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lc)) < 1e-12
    worst, key = _worst(se, sc)
    assert worst < 1e-12, key
    if discriminate:
        worst_all, key_all = _worst(se, sa)
        assert worst_all > 1e-3 and "running_" in key_all


def test_each_chosen_op_runs_once_per_pass_and_no_other_op_runs():
    """Forward hooks count each candidate op's calls during one grouped arch step (K=7 samples, one
    pass): every (cell, edge, op) that some sample chose with the edge kept runs exactly once, and no
    other op runs. The expected set comes from the sampler's draws, read on the host."""
    net, sampler, _, opt = method_parts("rome-v2", "darts")
    opt.config = type(opt.config)(**{**opt.config.__dict__, "group_ops": "chosen"})
    opt.set_progress(0, 1)
    set_fast(net, True)
    calls, draws = {}, []
    for c, cell in enumerate(net.cells):
        for e, ops in enumerate(cell.body.ops):
            for j, op in enumerate(ops):
                op.register_forward_hook(lambda m, i, o, key=(c, e, j): calls.__setitem__(key, calls.get(key, 0) + 1))
    sample = sampler.sample
    sampler.sample = lambda k: draws.append(sample(k)) or draws[-1]
    train, val = random_batches(1)[0]
    opt.arch_step(net, val)
    assert len(draws) == 1 and draws[0].samples == 7
    arch = draws[0]
    index = {k: arch.index[k].tolist() for k in arch.index}
    active = {k: arch.active[k].tolist() for k in arch.active}
    expected = {(c, e, index[cell.body.kind][s][e])
                for c, cell in enumerate(net.cells) for e in range(len(cell.body.ops)) for s in range(7)
                if active[cell.body.kind][s][e]}
    assert set(calls) == expected
    assert set(calls.values()) == {1}
    per_edge = len(expected) / sum(len(cell.body.ops) for cell in net.cells)
    assert per_edge < 7  # fewer op calls than the eager loop's K per edge


def test_chosen_ops_are_refused_for_cuda_graphs_by_name():
    net, sampler, cell, opt = method_parts("rome-v2", "s2")
    cuda = torch.device("cuda")  # a device object: no GPU needed to ask
    assert why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt) is None
    opt.config = type(opt.config)(**{**opt.config.__dict__, "group_ops": "chosen"})
    reason = why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt)
    assert "AccumulateBilevel" in reason and "group_ops='chosen'" in reason
    # the default, auto: on CUDA the all-op pass where the step is captured and the cells take the conv slots
    # (captured through them: the fastest there, 332.9 against 495.4 ms for the chosen-op pass on an H200,
    # BENCHMARKS.md), else the chosen-op pass; the all-op pass elsewhere. The chosen-op pass is refused by name
    # with the setting that captures
    opt.config = type(opt.config)(**{**opt.config.__dict__, "group_ops": "auto"})
    assert opt.group_ops == "all" and opt.graph_blocker is None
    opt._device_type = "cuda"  # as built for a network on CUDA, without one
    for ready, expect, ops in ((True, None, "all"), (True, True, "all"), (True, False, "chosen"),
                               (False, None, "chosen"), (False, True, "chosen")):
        opt._slots_ready, opt.expect_capture = ready, expect
        assert opt.group_ops == ops and opt.runtime_choices == {"group_ops": ops}, (ready, expect)  # recorded
    opt._slots_ready, opt.expect_capture = True, None  # not known yet whether captured: capturable
    assert why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt) is None
    opt._slots_ready = False  # no Triton, or a cell the slots do not know (NAS-Bench-201's dense convs)
    reason = why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt)
    assert "('auto' on CUDA where the cells do not take the conv slots; optimizer.group_ops=all captures)" in reason


def test_rome_on_cuda_takes_the_slots_where_every_cell_can(interpret, monkeypatch):
    """Whether ROME's cells take the conv slots on a device (group_ops=auto's CUDA choice), asked of the cells:
    the DARTS space's can (Triton's interpreter stands in for the GPU), not with cell.slots=false, not
    NAS-Bench-201's dense convs, and not on a CPU without the interpreter."""
    from harness_rome.components import _cell_bodies, _cells_take_slots

    cpu = torch.device("cpu")
    net = method_parts("rome-v2", "darts", channels=2, layers=2)[0]
    assert _cells_take_slots(_cell_bodies(net), cpu)
    off = method_parts("rome-v2", "darts", channels=2, layers=2, sets=[("cell", "slots", "false")])[0]
    assert not _cells_take_slots(_cell_bodies(off), cpu)
    nb201 = method_parts("rome-v2", "nb201", channels=2, layers=1)[0]
    assert not _cells_take_slots(_cell_bodies(nb201), cpu)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not _cells_take_slots(_cell_bodies(net), cpu)


def test_a_failed_capture_sends_rome_to_the_chosen_op_pass():
    """After a capture that failed (harness.graphs.GraphedStep's fallback) the run goes on uncaptured, where the
    chosen-op pass is the faster one: group_ops=auto resolves to it from the next step on."""
    net, _, _, opt = method_parts("rome-v2", "s2")
    opt._device_type, opt._slots_ready, opt._rerouted = "cuda", True, True
    assert opt.group_ops == "all"
    opt.leave_captured_form()
    assert opt.group_ops == "chosen" and opt._rerouted is False  # the bodies are told at the next step


def test_group_ops_names_the_valid_choices():
    _, _, _, opt = method_parts("rome-v2", "s2")
    with pytest.raises(ValueError, match=r"group_ops must be 'auto', 'all' or 'chosen', not 'some'"):
        type(opt.config)(**{**opt.config.__dict__, "group_ops": "some"})


def test_eager_single_path_cells_still_refuse_sample_groups():
    """route_samples acts on the fast path only: with runtime.fast off the K-loop runs (grouped() is
    False), and a grouped forward handed to an eager cell is refused, as before."""
    net, sampler, _, opt = method_parts("rome-v2", "s2")
    opt.config = type(opt.config)(**{**opt.config.__dict__, "group_ops": "chosen"})
    assert opt.grouped(net) is False
    body = next(m for m in net.modules() if isinstance(m, SinglePathBody))
    assert body.route_samples is True
    with pytest.raises(RuntimeError, match="sample groups need the fast path"):
        net(torch.randn(14, 3, 16, 16), sampler.sample(7))


def test_chosen_ops_after_the_fused_path_was_built():
    """A fused forward (here an evaluation forward before the search starts) makes each cell's BatchNorm
    buffers views of one tensor; the routed pass gives them their own storage back first (a shared version
    counter would fail the backward of a pass mixing 1-sample and 3-sample groups) and still matches the
    eager loop in float64."""
    torch.set_default_dtype(torch.float64)
    try:
        results = []
        for fast, sets in ((False, {}), (True, {"group_ops": "chosen", "sample_chunk": 3})):
            net, sampler, _, opt = method_parts("rome-v2", "s2", steps_per_epoch=6)
            opt.config = type(opt.config)(**{**opt.config.__dict__, **sets})
            opt.set_progress(0, 1)
            set_fast(net, fast)
            net.eval()
            with torch.no_grad():
                net(torch.randn(2, 3, 16, 16))
            net.train()
            data = random_batches(2)
            torch.manual_seed(7)
            results.append([float(opt.step(net, *data[i % 2]).train_loss) for i in range(2)])
    finally:
        torch.set_default_dtype(torch.float32)
    assert max(abs(a - b) / abs(a) for a, b in zip(*results)) < 1e-12


@pytest.mark.parametrize("sets", [{"group_ops": "chosen"}, {"group_ops": "chosen", "group_samples": False}])
def test_cells_whose_nodes_edges_are_not_consecutive_weight_each_edge_alone(sets, monkeypatch):
    """A cell type whose edges into a node are not listed one after another cannot weight a node's edges with
    one product (SinglePathBody._node_ranges is None): the K-sample pass and the one-sample chosen form
    (cell.fused=never) then weight each edge with a multiply-add, the same math (float64, 2 steps, against
    the eager K-loop, BatchNorm running statistics included)."""
    monkeypatch.setattr(SinglePathBody, "_node_ranges", lambda self: None)
    monkeypatch.setattr(SinglePathBody, "_fused_alone", lambda self, x: False)  # one sample: the chosen form
    calls = []
    real = SinglePathBody.chosen_forward if "group_samples" in sets else SinglePathBody.routed_forward
    name = "chosen_forward" if "group_samples" in sets else "routed_forward"
    monkeypatch.setattr(SinglePathBody, name, lambda self, *a: calls.append(1) or real(self, *a))
    torch.set_default_dtype(torch.float64)
    try:
        le, se, _ = _run("rome-v2", "darts", False, steps=2)
        lc, sc, _ = _run("rome-v2", "darts", True, steps=2, **sets)
    finally:
        torch.set_default_dtype(torch.float32)
    assert calls  # the form under test ran
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lc)) < 1e-12
    worst, key = _worst(se, sc)
    assert worst < 1e-12, key
