"""Issue 17: the single-path methods' fast path (ops chosen on the device, every op through the fused cell
weighted by the hard one-hot) and ROME's K samples as one grouped pass compute what the eager code
computes: the same search trajectory in float64 (the eager single-path cell and the eager K-loop are the
references), BatchNorm statistics per sample as K separate passes keep them, and a step that reads no
tensor value on the host (run on the meta device, where any such read fails)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import Batch
from harness.config import resolve
from harness.nn import groups
from harness.nn.cells import SinglePathBody, set_fast
from harness.spaces import NetShape
from tests.searchkit import REGISTRY, method_parts, random_batches


def _trajectory(method, space_name, fast, steps=4, sets=None, fused=None):
    net, sampler, _, opt = method_parts(method, space_name, steps_per_epoch=6)
    if sets:
        opt.config = type(opt.config)(**{**opt.config.__dict__, **sets})
    opt.set_progress(0, 1)
    set_fast(net, fast)
    if fused is not None:  # cell.fused for the single-path bodies
        for b in net.modules():
            if isinstance(b, SinglePathBody):
                b.fused_mode = fused
    data = random_batches(3)
    torch.manual_seed(7)
    losses = []
    for i in range(steps):
        train, val = data[i % 3]
        losses.append(float(opt.step(net, train, val).train_loss))
    grouped = opt.grouped(net) if hasattr(opt, "grouped") else None
    if fused is not None:  # instead: whether each body ever ran its fused form
        grouped = [b._fused is not None for b in net.modules() if isinstance(b, SinglePathBody)]
    return (losses, [a.detach().clone() for a in sampler.arch_parameters()],
            [p.detach().clone() for p in net.weight_parameters()], grouped)


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("method, space_name", [("gdas", "darts"), ("gdas", "nb201"), ("rome-v2", "darts"),
                                                ("rome-v1", "s3"), ("rome-v2", "nb201")])
def test_fast_single_path_search_matches_eager_in_float64(method, space_name):
    """4 steps: losses, arch parameters and every weight agree to 1e-12 (float64). For ROME the fast run
    takes its K=7 samples as one grouped pass, the eager run loops over them."""
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, g_eager = _trajectory(method, space_name, False)
        lf, af, wf, g_fast = _trajectory(method, space_name, True)
    finally:
        torch.set_default_dtype(torch.float32)
    if method.startswith("rome"):
        assert g_eager is False and g_fast is True
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(ae, af)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(we, wf)) < 1e-12


@pytest.mark.parametrize("method, space_name", [("entrannas", "darts"), ("entrannas-dst", "darts"),
                                                ("entrannas-dst", "s3"), ("entrannas", "s1")])
def test_entrannas_fast_cells_match_eager_in_float64(method, space_name):
    """EnTranNAS's engine cells through the fused mixed path (units per (source, op), bottleneck and
    restoring conv as the units' prepare/finish), dense DST transit cells fused per selection, the cell
    inputs' bottlenecks as one grouped pass: 4 steps agree with the eager cells to 1e-12 in float64."""
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, _ = _trajectory(method, space_name, False)
        net, *_ = method_parts(method, space_name)
        assert len(set_fast(net, True)) == len(net.cells)  # engine and transit cells have a fast path
        lf, af, wf, _ = _trajectory(method, space_name, True)
    finally:
        torch.set_default_dtype(torch.float32)
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lf)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(ae, af)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(we, wf)) < 1e-12


def test_grouped_rome_in_chunks_and_per_sample_clipping_match_eager():
    """sample_chunk=3 (passes of 3, 3 and 1 samples) is the same step; weight_clip="per-sample" keeps the
    weight step a loop (each sample's gradient is clipped alone) and is the same step too."""
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, _, _ = _trajectory("rome-v2", "s2", False, steps=2)
        lc, ac, _, grouped = _trajectory("rome-v2", "s2", True, steps=2, sets={"sample_chunk": 3})
        lp, ap, _, _ = _trajectory("rome-v2", "s2", False, steps=2, sets={"weight_clip": "per-sample"})
        lq, aq, _, _ = _trajectory("rome-v2", "s2", True, steps=2, sets={"weight_clip": "per-sample"})
    finally:
        torch.set_default_dtype(torch.float32)
    assert grouped
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lc)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(ae, ac)) < 1e-12
    assert max(abs(a - b) / abs(a) for a, b in zip(lp, lq)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(ap, aq)) < 1e-12


def test_fast_single_path_forward_and_gradients_match_eager_with_the_same_draw():
    """One GDAS forward/backward on darts with one architecture drawn once and handed to both nets:
    outputs and gradients equal; the unchosen ops' weights get exact-zero gradients on the fast path."""
    net, sampler, _, _ = method_parts("gdas", "darts")
    fast = copy.deepcopy(net)
    set_fast(fast, True)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    torch.manual_seed(3)
    arch = net.sampler()
    out_e, out_f = net(x, arch), fast(x, arch)
    assert _rel(out_e, out_f) < 1e-5
    F.cross_entropy(out_e, y).backward(retain_graph=True)  # both nets' graphs share the sampler's
    F.cross_entropy(out_f, y).backward()
    unused = 0
    names = {id(p): name for name, p in net.named_parameters()}
    for pe, pf in zip(net.weight_parameters(), fast.weight_parameters()):  # the draw is net.sampler's
        name = names[id(pe)]
        if pe.grad is None:  # not on the sampled path: no gradient eagerly, zeros on the fast path
            assert pf.grad is not None and not pf.grad.any(), name
            unused += 1
        else:
            assert _rel(pe.grad, pf.grad) < 1e-4, name
    assert unused > 0


@pytest.mark.parametrize("per_block_up_to", [0, 7])  # side by side in channels / one call per block
@pytest.mark.parametrize("k", [2, 3, 7])
def test_sample_groups_batch_norm_equals_k_separate_passes(k, per_block_up_to, monkeypatch):
    """K blocks of a batch through a SampleBatchNorm2d: outputs normalised per block, and running
    statistics as K successive nn.BatchNorm2d calls leave them (momentum applied K times, block 1 first)."""
    monkeypatch.setattr(groups, "PER_BLOCK_UP_TO", per_block_up_to)
    torch.manual_seed(0)
    n, c = 5, 4
    x = torch.randn(k * n, c, 6, 6) * torch.arange(1, k + 1).repeat_interleave(n)[:, None, None, None]
    ref = nn.BatchNorm2d(c, momentum=0.3)
    ref.running_mean.uniform_()
    grouped = copy.deepcopy(ref)
    groups.enable(grouped)
    assert type(grouped) is groups.SampleBatchNorm2d
    outs = [ref(block) for block in x.view(k, n, c, 6, 6)]
    with groups.sample_groups(k):
        out = grouped(x)
    torch.testing.assert_close(out, torch.cat(outs), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped.running_mean, ref.running_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grouped.running_var, ref.running_var, rtol=1e-6, atol=1e-7)
    assert int(grouped.num_batches_tracked) == int(ref.num_batches_tracked) == k
    seed = torch.randn_like(out)  # and the affine gradients: summed over the K passes
    torch.autograd.backward(outs, list(seed.view(k, n, c, 6, 6)))
    out.backward(seed)
    torch.testing.assert_close(grouped.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grouped.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(grouped(x[:n]), ref(x[:n]))  # outside sample groups: plain BatchNorm


def test_sample_groups_refuse_other_batch_norms_by_name():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm1d(3))
    assert "1 is a BatchNorm1d" in groups.why_not(net)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        groups.enable(net)


def _meta_step(method, fast):
    spec = resolve(REGISTRY, REGISTRY.methods[method], "darts", "digits", 0, "paper", {}, [])
    space = REGISTRY.space("darts", spec.budget.search.op_set)
    comp = {k: REGISTRY.component(k, n) for k, n in spec.components.items()}
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    net = space.build_search_network(sampler, comp["cell"].factory(spec.hparams["cell"]), 4, 3,
                                     NetShape(3, 10, 16)).to("meta")
    opt = comp["optimizer"].factory(spec.hparams["optimizer"], net=net, steps_per_epoch=4, epochs=2)
    opt.set_progress(0, 2)
    net.train()
    set_fast(net, fast)

    def batch():
        return Batch(torch.empty(2, 3, 16, 16, device="meta"), torch.empty(2, dtype=torch.long, device="meta"))

    opt.step(net, batch(), batch())


@pytest.mark.parametrize("method", ["gdas", "rome-v1", "rome-v2"])
def test_fast_single_path_steps_read_nothing_on_the_host(method):
    """On the meta device a tensor has no values: any host read (.tolist(), .item(), .cpu()) fails. The
    eager single-path step reads the sampled ops (it must, to pick modules); the fast step reads nothing,
    so on a GPU it never waits for the device (what search_step.py --sync-check asserts there)."""
    with pytest.raises(NotImplementedError, match="meta"):
        _meta_step(method, fast=False)
    _meta_step(method, fast=True)


def test_rome_sizes_its_grouped_passes_from_one_samples_memory(monkeypatch):
    """sample_chunk=0 on CUDA: the first grouped step runs one-sample passes and takes as many samples per
    pass as fit in 70% of the spare memory (free + cached unused). The allocator's counters are replaced
    here (no GPU): 100 MiB allocated before, 400 MiB peak -> 300 MiB a sample; 1 GiB free + 200 MiB cached
    unused -> int(0.7 * 1224 / 300) = 2 samples a pass; on a CPU all K."""
    mib = 2**20
    state = {"allocated": 100 * mib}
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 400 * mib)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024 * mib, 80 * 1024 * mib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 300 * mib)
    net, _, _, opt = method_parts("rome-v2", "s2")
    assert opt._chunks(net) == ([7], False)  # parameters on the CPU: all K at once
    opt._auto_chunk = None
    before = opt._probe_start("cuda")
    opt._probe_end("cuda", before)
    assert opt._auto_chunk == 2
    assert opt._chunks(net) == ([2, 2, 2, 1], False)


def test_sampler_check_refuses_host_and_device_decisions_that_disagree():
    """The eager single-path cell follows host_index/host_active, the fast one index/active: a sampler whose
    two copies differ (or that gives only one of the active masks) is refused by name before a run."""
    from dataclasses import replace as dc_replace

    from harness import testing
    from harness.errors import HarnessError
    from harness.nn.samplers import GumbelConfig, GumbelSampler

    space = REGISTRY.space("s2")

    class HostOnlyMask(GumbelSampler):
        def forward(self):
            arch = super().forward()
            return dc_replace(arch, host_index=dict(arch.host_index),
                              host_active={k: [False] + [True] * (len(v) - 1) for k, v in arch.host_index.items()})

    class StaleHostIndex(GumbelSampler):
        def forward(self):
            arch = super().forward()
            return dc_replace(arch, host_index={k: [1 - int(i) for i in v] for k, v in arch.host_index.items()})

    testing.check_sampler(GumbelSampler, GumbelConfig(), space=space, name="gumbel", plugin="acme")
    with pytest.raises(HarnessError, match="host_active/active"):
        testing.check_sampler(HostOnlyMask, GumbelConfig(), space=space, name="mask", plugin="acme")
    with pytest.raises(HarnessError, match="index.*host_index.*different ops"):
        testing.check_sampler(StaleHostIndex, GumbelConfig(), space=space, name="stale", plugin="acme")


def test_one_sample_takes_the_fused_form_only_where_it_pays(monkeypatch):
    """cell.fused=auto (the default): on a launch-bound device (CUDA) an uncaptured one-sample forward runs the
    sampled op per edge (the eager form; H200: 167 ms against 259 ms fused for GDAS), the fused all-op form
    while a CUDA graph is captured; ROME's all-op sample groups keep the fused form for one-sample passes too
    (its CUDA memory probe measures them). The same output either way (float64)."""
    from harness.nn import cells
    from harness.nn.cells import SinglePathConfig

    monkeypatch.setattr(cells, "launch_bound", lambda x: True)  # as on CUDA, without one
    torch.set_default_dtype(torch.float64)
    try:
        net, sampler, cell, opt = method_parts("gdas", "s2")
        assert cell.config.fused == "auto"
        set_fast(net, True)
        bodies = [m for m in net.modules() if isinstance(m, cells.SinglePathBody)]
        x = random_batches(1)[0][0].x
        torch.manual_seed(3)
        eager = net(x)
        assert all(b._fused is None for b in bodies)  # no fused forward built: the eager form ran
        assert not any(b.computes_every_op for b in bodies)  # so an out-of-memory hint does not blame it
        torch.manual_seed(3)
        with groups.as_captured():
            fused = net(x)
        assert all(b._fused is not None and b.computes_every_op for b in bodies)
        torch.testing.assert_close(fused, eager, rtol=1e-12, atol=1e-12)
        net(x).sum().backward()  # once fused (a captured run), uncaptured forwards stay fused: backward works
        assert all(b.computes_every_op for b in bodies)

        net, _, _, opt = method_parts("rome-v2", "s2")  # on a CPU group_ops=auto is the all-op pass
        set_fast(net, True)
        assert opt.group_ops == "all" and opt.grouped(net)
        net(x)
        assert all(b._fused is not None for b in net.modules() if isinstance(b, cells.SinglePathBody))
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(ValueError, match="fused must be 'auto', 'always' or 'never', not 'sometimes'"):
        SinglePathConfig(fused="sometimes")


@pytest.mark.parametrize("method, space_name, sets", [("gdas", "darts", None), ("gdas", "nb201", None),
                                                      ("rome-v2", "s2", {"group_samples": False})])
def test_chosen_form_matches_the_eager_cell_in_float64(method, space_name, sets):
    """The sampled op per edge with the edge's weights folded into one multiply-add (what cell.fused=auto runs
    on CUDA uncaptured; cell.fused=never anywhere): 4 steps agree with the eager cell to 1e-12 (float64),
    ROME's kept-edge masks (host_active) included."""
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, _ = _trajectory(method, space_name, False, sets=sets)
        lc, ac, wc, took_fused = _trajectory(method, space_name, True, sets=sets, fused="never")
    finally:
        torch.set_default_dtype(torch.float32)
    assert took_fused and not any(took_fused)  # no body ever ran its fused form: the chosen form ran
    assert max(abs(a - b) / abs(a) for a, b in zip(le, lc)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(ae, ac)) < 1e-12
    assert max(_rel(a, b) for a, b in zip(we, wc)) < 1e-12
