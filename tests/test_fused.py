"""The fast (fused) mixed cell computes what the eager cell computes: outputs, gradients, BatchNorm
state, noise draws, and a short search trajectory (in float64, where rounding cannot hide a wrong term)."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from harness.api import Batch
from harness.nn.cells import set_fast
from harness.nn.fused import FusedMixed
from tests.searchkit import REGISTRY, SHAPE, eager_and_fast_in_float64, method_parts, random_batches

SPACES = ["darts", "s1", "s2", "s3", "s4", "nb201"]


def supernet(space_name, channels=4, layers=5, sampler="softmax", seed=0):
    space = REGISTRY.space(space_name)
    s, c = REGISTRY.component("sampler", sampler), REGISTRY.component("cell", "mixed")
    torch.manual_seed(seed)
    return space.build_search_network(s.factory(s.config(), space=space), c.factory(c.config()), channels,
                                      layers, SHAPE)


def pair(space_name, **kw):
    eager = supernet(space_name, **kw)
    fast = copy.deepcopy(eager)
    assert len(set_fast(fast, True)) == len([m for m in fast.modules() if getattr(m, "supports_fast", False)]) > 0
    return eager, fast


def rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("space_name", SPACES)
def test_forward_backward_and_bn_state_match_eager(space_name):
    eager, fast = pair(space_name)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    torch.manual_seed(1)  # s4's noise ops draw from the global stream
    out_e = eager(x)
    torch.manual_seed(1)
    out_f = fast(x)
    assert rel(out_f, out_e) < 1e-5
    F.cross_entropy(out_e, y).backward()
    F.cross_entropy(out_f, y).backward()
    for (name, pe), pf in zip(eager.named_parameters(), fast.parameters()):
        assert pe.grad is not None and pf.grad is not None, name
        assert rel(pf.grad, pe.grad) < 1e-4, name
    for (name, be), bf in zip(eager.named_buffers(), fast.buffers()):  # running stats, batch counters
        assert torch.allclose(bf.float(), be.float(), rtol=1e-5, atol=1e-6), name
    eager.eval()
    fast.eval()
    with torch.no_grad():
        torch.manual_seed(2)
        out_e = eager(x)
        torch.manual_seed(2)
        assert rel(fast(x), out_e) < 1e-5  # eval mode uses the (shared-view) running statistics


def test_every_op_of_the_darts_families_is_fused():
    for space_name in SPACES:
        _, fast = pair(space_name)
        fast(torch.randn(2, 3, 16, 16))
        for cell in fast.cells:
            body = getattr(cell, "body", None)
            if body is not None and body._fused is not None:
                assert body._fused.eager_units == [], space_name


def test_state_dict_round_trip_and_rebinding():
    eager, fast = pair("darts")
    x = torch.randn(4, 3, 16, 16)
    fast(x)  # binds the BN buffers as views of fused tensors
    eager(x)
    fresh = supernet("darts")
    fresh.load_state_dict(fast.state_dict())  # a fast net's checkpoint loads into an eager one
    for be, bf in zip(eager.buffers(), fresh.buffers()):
        assert torch.allclose(be.float(), bf.float(), rtol=1e-5, atol=1e-6)
    other = supernet("darts", seed=3)
    with torch.no_grad():
        other(x)
    fast.load_state_dict(other.state_dict())  # in-place copies keep the views bound ...
    fast.eval()
    other.eval()
    with torch.no_grad():
        assert rel(fast(x), other(x)) < 1e-5  # ... so the fused BN uses the loaded statistics
    fast.load_state_dict(copy.deepcopy(other.state_dict()), assign=True)  # replaced buffers are re-bound
    with torch.no_grad():
        assert rel(fast(x), other(x)) < 1e-5


def test_deepcopy_of_a_fast_net_is_independent():
    _, fast = pair("s3")
    x = torch.randn(4, 3, 16, 16)
    fast(x)
    clone = copy.deepcopy(fast)
    before = [b.clone() for b in fast.buffers()]
    clone(x + 1)
    assert all(torch.equal(a, b) for a, b in zip(before, fast.buffers()))


@pytest.mark.parametrize("space_name, method", [("darts", "darts"), ("s4", "darts"), ("nb201", "darts"), ("s3", "darts-2nd"),
                                                ("s2", "single-darts")])
def test_search_trajectory_matches_eager_in_float64(space_name, method):
    """6 optimizer steps (arch + weight) of a real method: losses and alpha agree to 1e-9 in float64 (a wrong term
    shows from the first step at that tolerance; 12 steps on the small spaces until 2026-12-05, the suite's time).
    (In float32 the trajectories of this tiny, fast-moving toy net are chaotic: eager against eager with
    the weights perturbed by 1e-7 drifts apart by 1e-3 within 10 steps, so float32 cannot tell a wrong
    term from rounding; float64 can. The GPU fp32 comparison is benchmarks/search_step.py --compare.)"""
    torch.set_default_dtype(torch.float64)
    try:
        data = random_batches(3)

        def trajectory(fast):
            net, sampler, _, opt = method_parts(method, space_name, steps_per_epoch=6)
            opt.set_progress(0, 1)
            set_fast(net, fast)
            init = [a.detach().clone() for a in sampler.arch_parameters()]
            losses = []
            for i in range(6):
                train, val = data[i % 3]
                stats = opt.step(net, train, val if opt.needs_val_batch else None)
                losses.append(float(stats.train_loss))
            final = [a.detach().clone() for a in sampler.arch_parameters()]
            assert any(not torch.equal(a, b) for a, b in zip(init, final))  # alpha did move
            return losses, final

        (le, ae), (lf, af) = trajectory(False), trajectory(True)
        assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-9
        assert max(rel(b, a) for a, b in zip(ae, af)) < 1e-9
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("space_name, method", [("s4", "pc-darts"), ("darts", "drnas")])
def test_partial_channel_cells_on_the_fast_path_follow_the_eager_cell_in_float64(space_name, method):
    """PC-DARTS (edge normalisation, S4's noise) and DrNAS (two stages: K=2 widened to 1 and ops pruned at the
    second epoch's start): two epochs of 3 steps through the fused partial-channel forward (the shuffled
    concatenation summed per node) against the eager cell, losses, alphas, weights and BatchNorm buffers to
    1e-12 in float64."""
    sets = [("cell", "k", 2), ("optimizer", "k_schedule", "2,1")] if method == "drnas" else []
    (le, eager), (lf, fast) = eager_and_fast_in_float64(method, space_name, sets=sets)
    bodies = [m for m in fast.modules() if hasattr(m, "set_partial")]
    assert all(b._fused is not None for b in bodies)  # the fast path ran
    if method == "drnas":  # the second stage: widened to K=1, pruned ops left out of the fused units
        assert {b.k for b in bodies} == {1} and all(b.active_ops is not None for b in bodies)
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-12
    for (name, a), (_, b) in zip(eager.state_dict().items(), fast.state_dict().items()):
        assert rel(b.double(), a.double()) < 1e-12, name


def test_unknown_op_modules_run_eagerly_inside_the_fast_path():
    """A plugin's own op (any nn.Module) is not refused: it runs as an eager unit."""
    class Scale(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    eager, fast = pair("s2")
    for net in (eager, fast):
        net.cells[0].body.ops[0][0] = Scale()  # edge 0, op 0 of the first cell
    x = torch.randn(2, 3, 16, 16)
    out_f = fast(x)
    assert fast.cells[0].body._fused.eager_units == [(0, 0)]
    assert rel(out_f, eager(x)) < 1e-5
    assert isinstance(fast.cells[0].body._fused, FusedMixed)


def test_darts_pt_selection_is_the_same_on_the_fast_path():
    """DARTS-PT's tuning and perturbation phase (eval-mode measurements, masked weights, fine-tuning
    steps between decisions) decides exactly as on the eager cells (float64, so no near-ties flip)."""
    torch.set_default_dtype(torch.float64)
    try:
        space = REGISTRY.space("s3")
        info = REGISTRY.component("selector", "pt")
        o_info = REGISTRY.component("optimizer", "first-order")
        gen = torch.Generator().manual_seed(3)
        val = [Batch(torch.randn(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen))]
        train = [Batch(torch.randn(8, 3, 16, 16, generator=gen), torch.randint(0, 10, (8,), generator=gen))]

        def select(fast):
            from harness.api import SelectionContext

            net = supernet("s3", layers=3)
            with torch.no_grad():
                for a in net.sampler.arch_parameters():
                    a.normal_(0, 1, generator=torch.Generator().manual_seed(4))
            set_fast(net, fast)
            opt = o_info.factory(o_info.config(), net=net, steps_per_epoch=1, epochs=1)
            sel = info.factory(info.config(tune_epochs_per_decision=0, tune_steps=1, max_val_batches=1))
            ctx = SelectionContext(space=space, val_batches=lambda: iter(val), train_batches=lambda: iter(train),
                                   optimizer=opt, seed=0)
            return sel.select(net, ctx), sel.decisions

        (g_e, d_e), (g_f, d_f) = select(False), select(True)
        assert g_f == g_e
        assert d_f == d_e
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_subclass_that_changes_the_edge_keeps_its_own_math():
    """The fused path replaces MixedBody.edge_forward; a plugin's subclass that overrides it (e.g. a
    partial-channel edge) is not switched, so set_fast never changes what such a cell computes."""
    from harness.blocks import MixedBody

    class HalfEdge(MixedBody):
        def edge_forward(self, e, x, arch):
            return 0.5 * super().edge_forward(e, x, arch)

    class HalfCell:
        def build(self, spec):
            return HalfEdge(spec)

    space = REGISTRY.space("s2")
    s = REGISTRY.component("sampler", "softmax")
    torch.manual_seed(0)
    net = space.build_search_network(s.factory(s.config(), space=space), HalfCell(), 4, 3, SHAPE)
    x = torch.randn(2, 3, 16, 16)
    before = net(x)
    assert set_fast(net, True) == []
    assert torch.equal(net(x), before)


def test_edges_whose_only_op_is_none():
    """A node fed only by `none` ops is zeros in both paths (and the pass for its source is skipped)."""
    from harness.nn.ops import Zero

    eager, fast = pair("s3")
    for net in (eager, fast):
        for cell in net.cells:
            body = cell.body
            for e, (src, dst) in enumerate(body.spec.edges):
                if src == 4 or dst == 3:  # node 4's outgoing edge and every edge into node 3
                    for k in range(len(body.ops[e])):
                        body.ops[e][k] = Zero(body.spec.strides[e])
    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 10, (2,))
    out_e, out_f = eager(x), fast(x)
    assert rel(out_f, out_e) < 1e-5
    F.cross_entropy(out_e, y).backward()
    F.cross_entropy(out_f, y).backward()
    for pe, pf in zip(eager.sampler.arch_parameters(), fast.sampler.arch_parameters()):
        assert rel(pf.grad, pe.grad) < 1e-4


def test_3x3_and_5x5_depthwise_chains_share_one_group_only_where_both_are_several(monkeypatch):
    """With MERGE_KERNEL = 5 (not the default since the H200 ranking): on darts, sep_conv_3x3 and sep_conv_5x5 (and the dil_conv pair) of a pass run as one chain with the
    3x3 weights zero-padded (their units next to each other, 3x3 first); on s2, where sep_conv_3x3 has no
    5x5 partner, its group keeps its own 3x3 key (no padding). The forward equals the eager cell's
    (test_forward_backward_and_bn_state_match_eager)."""
    import harness.nn.fused as fused

    monkeypatch.setattr(fused, "MERGE_KERNEL", 5)

    def kernels(space_name):
        _, fast = pair(space_name)
        fast(torch.randn(2, 3, 16, 16))
        body = fast.cells[0].body
        out = []
        for blocks, *_ in body._fused.plans:
            for members, _ in blocks:
                for g, _ in members:
                    if g.key[0] == "chain":
                        dw = [d for d in g.key[1:] if d[0] == "conv" and d[1] == "dw"]
                        if dw:
                            sizes = [layers[1].weight.shape[-1] for layers in g.layers]
                            out.append((dw[0][4], sizes))
        return out

    darts = kernels("darts")
    merged = [sizes for key_kernel, sizes in darts if key_kernel == (5, 5) and 3 in sizes]
    assert merged and all(sizes == sorted(sizes) for sizes in merged)  # 3x3 units first
    assert all(key_kernel == (3, 3) and set(sizes) == {3} for key_kernel, sizes in kernels("s2"))


@pytest.mark.parametrize("space_name, merge, matmul, last, spread, captured", [
    ("darts", 5, False, False, False, False), ("nb201", 0, False, False, True, False),
    ("darts", 0, True, True, True, False), ("darts", 0, True, False, True, True)])
def test_layout_variants_follow_the_eager_trajectory_in_float64(space_name, merge, matmul, last, spread, captured,
                                                                monkeypatch):
    """The forms benchmarks/step_variants.py times on a GPU (3x3 depthwise kernels widened to 5x5 or not;
    1x1 convolutions as one batched matrix product or grouped convolutions; the first depthwise conv per
    source or on its repeated input; the net and its inputs in channels_last), and the default form as a
    CUDA graph captures it (groups.as_captured: the 1x1 products and pools as harness.nn.fused's own
    Functions), compute the eager cell's math: 2 DARTS steps in float64, losses and alpha to 1e-9 of the
    eager cells'."""
    from harness.nn import groups

    import harness.nn.fused as fused

    monkeypatch.setattr(fused, "MERGE_KERNEL", merge)
    monkeypatch.setattr(fused, "POINTWISE_MATMUL", matmul)
    monkeypatch.setattr(fused, "SPREAD_DEPTHWISE", spread)
    calls = []
    real = fused._pointwise
    monkeypatch.setattr(fused, "_pointwise", lambda *a: calls.append(groups.capturing(a[0])) or real(*a))
    torch.set_default_dtype(torch.float64)
    try:
        data = random_batches(2)

        def trajectory(fast):
            net, sampler, _, opt = method_parts("darts", space_name, steps_per_epoch=12)
            opt.set_progress(0, 1)
            set_fast(net, fast)
            if fast and last:
                net = net.to(memory_format=torch.channels_last)
            losses = []
            for i in range(2):
                train, val = (Batch(b.x.contiguous(memory_format=torch.channels_last), b.y) if fast and last
                              else b for b in data[i])
                with groups.as_captured() if fast and captured else contextlib.nullcontext():
                    losses.append(float(opt.step(net, train, val).train_loss))
            return losses, [a.detach().clone() for a in sampler.arch_parameters()], net

        (le, ae, _), (lf, af, net) = trajectory(False), trajectory(True)
        assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-9
        assert max(rel(b, a) for a, b in zip(ae, af)) < 1e-9
        assert bool(calls) == matmul  # the matrix-product form ran exactly when asked for
        assert all(calls) if captured else not any(calls)  # ... in its captured form (_Pointwise) or not
        if space_name == "darts" and merge == 0:
            keys = [g.key for blocks, *_ in net.cells[0].body._fused.plans for members, _ in blocks
                    for g, _ in members if g.key[0] == "chain"]
            dw = {d[4] for key in keys for d in key[1:] if d[0] == "conv" and d[1] == "dw"}
            assert dw == {(3, 3), (5, 5)}  # both kernel sizes kept their own groups
    finally:
        torch.set_default_dtype(torch.float32)


def test_parameter_free_ops_of_a_source_run_once_for_all_its_edges():
    """NB201's cell (4 nodes, an edge from every node to every later one): node 0 feeds 3 edges, node 1
    feeds 2, node 2 feeds 1. Its skip_connect (Identity) and avg_pool_3x3 (no weights, no BatchNorm) give
    one unit per source feeding each of those edges; the convolutions keep one unit per edge. The forward
    equals the eager cell's (test_forward_backward_and_bn_state_match_eager)."""
    _, fast = pair("nb201")
    body = fast.cells[0].body
    fast(torch.randn(2, 3, 16, 16))
    feeds = {}
    for blocks, order, links, targets, units in body._fused.plans:
        for members, _ in blocks:
            for g, srcs in members:
                kind = "skip" if g.key[0] == "identity" else "pool" if g.key[1][0] == "avgpool" else "conv"
                for u, src in zip(g.units, srcs):
                    feeds.setdefault((kind, src), []).append(len(units[u].links))
    assert feeds[("skip", 0)] == feeds[("pool", 0)] == [3]
    assert feeds[("skip", 1)] == feeds[("pool", 1)] == [2]
    assert feeds[("skip", 2)] == feeds[("pool", 2)] == [1]
    assert sorted(feeds[("conv", 0)]) == [1] * 6  # conv_1x1 and conv_3x3 on each of node 0's 3 edges


@pytest.mark.parametrize("n_groups, captured", [(1, True), (3, True), (3, False)])
def test_pointwise_matmul_is_the_grouped_1x1_convolution(n_groups, captured):
    """harness.nn.fused._pointwise against F.conv2d (float64): output and both gradients, in both its forms;
    the captured form (harness.nn.groups.as_captured) keeps only its input and weight for backward, not
    the weight broadcast over the batch, and computes only the gradients a backward pass asks for."""
    from harness.nn import groups
    from harness.nn.fused import _pointwise

    gen = torch.Generator().manual_seed(n_groups)
    x0 = torch.randn(5, 6, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    x = x0 * 1.0  # a non-leaf input, as in a cell
    w = torch.randn(9, 6 // n_groups, 1, 1, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.randn(5, 9, 4, 3, dtype=torch.float64, generator=gen)
    saved = []
    form = groups.as_captured() if captured else contextlib.nullcontext()
    with form, torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        out = _pointwise(x, w, n_groups)
    ref = F.conv2d(x, w, None, 1, 0, 1, n_groups)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(out, (x0, w), g, retain_graph=True)
    want = torch.autograd.grad(ref, (x0, w), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    (only_w,) = torch.autograd.grad(out, (w,), g)  # the input's gradient not asked for
    torch.testing.assert_close(only_w, want[1], rtol=1e-12, atol=1e-12)
    if captured:
        assert sorted(saved) == sorted([x.shape, w.shape])
    else:
        assert (5 * n_groups, 9 // n_groups, 6 // n_groups) in saved  # torch.matmul keeps the broadcast weight


def test_first_depthwise_conv_keeps_each_source_once_for_backward(monkeypatch):
    """SPREAD_DEPTHWISE: the separable and dilated convs of a DARTS cell read each source's ReLU output
    once instead of a copy per edge; in one forward of the 5-cell test supernet that is less kept for
    backward (and the same math: test_layout_variants_follow_the_eager_trajectory_in_float64)."""
    import harness.nn.fused as fused

    def saved_bytes(spread):
        monkeypatch.setattr(fused, "SPREAD_DEPTHWISE", spread)
        _, fast = pair("darts")
        seen = {}
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t: (seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()), t)[1],
                lambda t: t):
            fast(torch.randn(8, 3, 16, 16))
        return sum(seen.values())

    spread, repeated = saved_bytes(True), saved_bytes(False)
    assert spread < 0.95 * repeated, (spread, repeated)  # here 0.87 (0.88: 6.73 against 7.68 GiB at paper size)


def test_pools_on_the_cell_inputs_run_once_per_input(monkeypatch):
    """SPREAD_POOLS: a cell-input pass's max and average pools (8 units each: s0, s1, s0, s1, ... for the 4
    nodes) pool the two inputs once, 2*C channels, not 8*C, and repeat the pooled maps for the units (the
    same outputs: test_layout_variants_follow_the_eager_trajectory_in_float64 fails when the repeat's order
    is wrong). Counted by the pools' input channels in one forward of the test supernet, both settings."""
    import harness.nn.fused as fused

    def widest(spread):
        monkeypatch.setattr(fused, "SPREAD_POOLS", spread)
        _, fast = pair("darts")
        stem_c = max(m.out_channels for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
        seen = []
        real_max, real_avg = F.max_pool2d, F.avg_pool2d
        monkeypatch.setattr(fused.F, "max_pool2d", lambda h, *a, **k: seen.append(h.shape[1]) or real_max(h, *a, **k))
        monkeypatch.setattr(fused.F, "avg_pool2d", lambda h, *a, **k: seen.append(h.shape[1]) or real_avg(h, *a, **k))
        try:
            fast(torch.randn(2, 3, 16, 16))
        finally:
            monkeypatch.setattr(fused.F, "max_pool2d", real_max)
            monkeypatch.setattr(fused.F, "avg_pool2d", real_avg)
        return max(seen), stem_c

    (spread, c), (repeated, _) = widest(True), widest(False)
    assert repeated == 4 * spread and spread <= 2 * c, (spread, repeated, c)


@pytest.mark.parametrize("pool", ["max", "avg", "avg-exclude-pad"])
def test_captured_pools_keep_less_and_compute_torchs_gradients(pool):
    """The fused cell's pools while a graph is captured (harness.nn.fused._MaxPool / _AvgPool) against
    torch's, in float64: output and input gradient, stride 1 and 2; for backward max pooling keeps its
    input only (no int64 argmax), average pooling nothing."""
    from harness.nn.fused import _AvgPool, _MaxPool

    gen = torch.Generator().manual_seed(0)
    for stride in (1, 2):
        x0 = torch.randn(3, 4, 7, 6, dtype=torch.float64, generator=gen, requires_grad=True)
        x = x0 * 1.0
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: (saved.append(t.dtype), t)[1], lambda t: t):
            if pool == "max":
                out = _MaxPool.apply(x, 3, stride, 1, False)
            else:
                out = _AvgPool.apply(x, 3, stride, 1, False, pool == "avg")
        ref = (F.max_pool2d(x, 3, stride, 1, 1, False) if pool == "max"
               else F.avg_pool2d(x, 3, stride, 1, False, pool == "avg"))
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        g = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
        (got,) = torch.autograd.grad(out, x0, g, retain_graph=True)
        (want,) = torch.autograd.grad(ref, x0, g)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        assert saved == ([torch.float64] if pool == "max" else [])
