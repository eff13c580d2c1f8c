"""EnTranNAS / EnTranNAS-DST components on toy CPU configurations."""

import math

import pytest
import torch

from harness.api import SelectionContext
from harness.genotypes import parse_genotype
from harness.plugins import load_registry
from harness.spaces import NetShape

from harness_entrannas.components import (
    DSTConfig, DSTSampler, EngineTransitCell, EngineTransitConfig, KeepNonzeroConfig, KeepNonzeroSelector,
    TemperedSoftmaxConfig, TemperedSoftmaxSampler, genotype_selection,
)

REGISTRY = load_registry()
SHAPE = NetShape(in_channels=1, num_classes=4, resolution=8)


def net_for(space_name, sampler, cell_config=EngineTransitConfig(), channels=4, layers=5, seed=0):
    space = REGISTRY.space(space_name)
    torch.manual_seed(seed)
    return space, space.build_search_network(sampler(space), EngineTransitCell(cell_config), channels, layers, SHAPE)


def softmax_sampler(space):
    return TemperedSoftmaxSampler(TemperedSoftmaxConfig(), space)


def dst_sampler(space, **kw):
    return DSTSampler(DSTConfig(**kw), space)


def x(n=4):
    return torch.randn(n, 1, 8, 8)


def test_registered_names_and_methods():
    assert {"entrannas-softmax", "dst"} <= set(REGISTRY.components["sampler"])
    assert "engine-transit" in REGISTRY.components["cell"]
    assert "dst-keep-nonzero" in REGISTRY.components["selector"]
    m = REGISTRY.methods["entrannas-dst"]
    assert (m.sampler, m.selector, m.cell) == ("dst", "dst-keep-nonzero", "engine-transit")
    assert m.budgets["paper"]["search"]["batch_size"] == 512
    assert REGISTRY.methods["entrannas"].defaults["optimizer"]["lr"] == 0.2


@pytest.mark.parametrize("layers,engines", [(5, [0, 1]), (8, [0, 2]), (3, [0, 1])])
def test_engine_cells_are_first_normal_and_first_reduction(layers, engines):
    _, net = net_for("s2", softmax_sampler, layers=layers)
    assert [i for i, c in enumerate(net.cells) if c.body.is_engine] == engines
    kinds = [c.body.kind for c in net.cells]
    assert kinds[engines[0]] == "normal" and kinds[engines[1]] == "reduce"
    assert kinds.index("normal") == engines[0] and kinds.index("reduce") == engines[1]


def sep(c, k):
    return 2 * (k * k * c + c * c)  # two [depthwise k x k, pointwise 1x1] blocks, BN affine-free


def dil(c, k):
    return k * k * c + c * c


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kind_index", [0, 1])  # engine normal cell, engine reduction cell
def test_feature_sharing_parameter_count(kind_index):
    """(n-1)*K op instances instead of |E|*K: 5 source nodes vs 14 edges in a DARTS cell."""
    c = 8
    bodies = {}
    for sharing in (True, False):
        _, net = net_for("darts", softmax_sampler, EngineTransitConfig(feature_sharing=sharing, bottleneck=1),
                         channels=c, layers=5)
        body = net.cells[kind_index].body
        assert body.is_engine
        bodies[sharing] = body
    reduction = kind_index == 1
    cc = 2 * c if reduction else c

    def per_source(stride):  # the DARTS ops with parameters at width cc
        skip = cc * cc if stride == 2 else 0  # FactorizedReduce: two 1x1 convs cc -> cc/2
        return sep(cc, 3) + sep(cc, 5) + dil(cc, 3) + dil(cc, 5) + skip

    strides = [2 if reduction and src < 2 else 1 for src, _ in REGISTRY.space("darts").edges]
    shared = sum(per_source(2 if reduction and s < 2 else 1) for s in range(5))
    unshared = sum(per_source(s) for s in strides)
    assert len(bodies[True].ops) == 5 * 8 and len(bodies[False].ops) == 14 * 8
    assert n_params(bodies[True]) == shared
    assert n_params(bodies[False]) == unshared
    assert shared < unshared


def test_bottleneck_parameter_count_and_width():
    c = 16
    _, net = net_for("s2", softmax_sampler, EngineTransitConfig(bottleneck=4), channels=c, layers=5)
    body = net.cells[0].body
    cb = c // 4
    assert body.bottleneck_width == cb
    expected = 5 * sep(cb, 3) + 5 * c * cb + 4 * cb * c  # shared ops + reduce convs + restore convs
    assert n_params(body) == expected
    out = net.cells[0].body([torch.randn(2, c, 8, 8), torch.randn(2, c, 8, 8)], net.sampler())
    assert all(s.shape == (2, c, 8, 8) for s in out) and len(out) == 6


def test_tempered_softmax_schedule_and_probabilities():
    space = REGISTRY.space("s2")
    s = softmax_sampler(space)
    s.set_progress(0, 50)
    assert s.tau == pytest.approx(5.0)
    s.set_progress(10, 50)
    assert s.tau == pytest.approx(5.0 * 0.923 ** 10)
    with torch.no_grad():
        s.alphas["normal"].normal_()
    torch.testing.assert_close(s.probabilities()["normal"], torch.softmax(s.alphas["normal"].detach() / s.tau, -1))


def executed_keys(net, run):
    """Run ``run()`` and return, per cell index, the set of op-module keys that executed."""
    seen, handles = {}, []
    for i, cell in enumerate(net.cells):
        for key, op in cell.body.ops.items():
            handles.append(op.register_forward_hook(lambda m, a, o, i=i, key=key: seen.setdefault(i, set()).add(key)))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("space_name", ["s2", "darts", "s1"])
def test_transit_cells_run_the_argmax_genotype(space_name):
    space, net = net_for(space_name, softmax_sampler, layers=4)  # N-engine, R-engine, R-transit, N-transit
    for trial in range(2):
        with torch.no_grad():
            for a in net.sampler.alphas.values():
                a.normal_(0, 2)
        net.sampler.set_progress(trial * 7, 50)
        selection = genotype_selection(space.derive(net.sampler.probabilities()), space)
        seen = executed_keys(net, lambda: net(x(2)))
        assert {c.body.kind for c in net.cells if not c.body.is_engine} == {"normal", "reduce"}
        for i, cell in enumerate(net.cells):
            body = cell.body
            if body.is_engine:
                assert seen[i] == set(body.ops.keys())  # mixed: every (source, op) runs once
                continue
            expected = {body.keys[e][k] for e, ks in enumerate(selection[body.kind]) for k in ks}
            assert seen[i] == expected
            # DARTS rule: exactly two input edges per node
            assert sum(len(ks) > 0 for ks in selection[body.kind]) == 2 * space.n_nodes


def test_transit_cells_carry_no_arch_gradient_and_derive_once_per_forward(monkeypatch):
    space, net = net_for("s2", softmax_sampler)
    calls = []
    real = space.derive
    monkeypatch.setattr(space, "derive", lambda p: calls.append(1) or real(p))
    arch = net.sampler()
    states = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)]
    transit = [c.body for c in net.cells if not c.body.is_engine]
    for body in transit:
        ch = body.spec.channels
        out = body([torch.randn(2, ch, 8, 8), torch.randn(2, ch, 8, 8)], arch)
        assert not any(o.grad_fn is not None and _depends_on(o, arch) for o in out[2:])
    assert len(calls) == 1  # one derivation shared by every transit cell of this forward
    engine = net.cells[0].body(states, arch)
    g = torch.autograd.grad(sum(o.sum() for o in engine[2:]), net.sampler.alphas["normal"])[0]
    assert g.abs().sum() > 0


def _depends_on(out, arch):
    """Whether ``out`` has a gradient path to any of the arch weights."""
    ws = [w for w in arch.weights.values()]
    grads = torch.autograd.grad(out.sum(), ws, allow_unused=True, retain_graph=True)
    return any(g is not None for g in grads)


@pytest.mark.parametrize("space_name", ["darts", "s1", "s3", "nb201"])
def test_dst_never_leaves_a_node_without_input(space_name):
    space = REGISTRY.space(space_name)
    gen = torch.Generator().manual_seed(0)
    s = dst_sampler(space)
    edges = list(space.edges)
    extremes = [-1e4, -50.0, -5.0, 0.0, 5.0, 17.0, 20.0, 50.0, 1e4, float("inf")]
    for draw in range(60):
        with torch.no_grad():
            for kind in space.cell_kinds:
                scale = [0.01, 1.0, 10.0, 100.0][draw % 4]
                s.alphas[kind].copy_(scale * torch.randn(s.alphas[kind].shape, generator=gen))
                b = s.betas[kind]
                if draw % 3 == 0:
                    b.copy_(torch.tensor([extremes[(draw + j) % len(extremes)] for j in range(b.numel())]))
                else:
                    b.copy_(20 * torch.randn(b.shape, generator=gen))
        s.set_progress(draw % 60, 60)
        arch = s()
        for kind in space.cell_kinds:
            w = arch.weights[kind]
            assert torch.isfinite(w).all()
            ops = space.edge_ops(kind)
            for dst in sorted({d for _, d in edges}):
                alive = [(e, k) for e, (_, d) in enumerate(edges) if d == dst
                         for k in range(len(ops[e])) if w[e, k] > 0 and ops[e][k] != "none"]
                assert alive, (kind, dst, draw)
            # per edge: the surviving weights sum to one, a dead edge is all zero
            sums = w.sum(-1)
            assert torch.all(((sums - 1).abs() < 1e-5) | (sums == 0))
        reg = s.regularization()
        assert torch.isfinite(reg)


def test_dst_regularization_formula():
    space = REGISTRY.space("s2")
    s = dst_sampler(space, lam=0.3)
    with torch.no_grad():
        s.betas["normal"].copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
        s.betas["reduce"].copy_(torch.tensor([3.0, 0.5, 0.0, -2.0]))
    expected = sum(-torch.log(s.thresholds(k)).mean() for k in space.cell_kinds) * 0.3
    torch.testing.assert_close(s.regularization(), expected)
    s.regularization().backward()
    assert all(b.grad is not None and (b.grad < 0).all() for b in s.betas.values())  # pushes t up


def test_dst_derived_set_is_exactly_the_nonzero_set():
    space, net = net_for("darts", dst_sampler, layers=4)
    sel = KeepNonzeroSelector(KeepNonzeroConfig())
    ctx = SelectionContext(space=space, val_batches=lambda: iter(()), train_batches=lambda: iter(()),
                           optimizer=None, seed=0)
    gen = torch.Generator().manual_seed(1)
    for trial in range(3):
        with torch.no_grad():
            for kind in space.cell_kinds:
                net.sampler.alphas[kind].copy_(3 * torch.randn(net.sampler.alphas[kind].shape, generator=gen))
                net.sampler.betas[kind].copy_(3 * torch.randn(space.n_nodes, generator=gen))
        g = sel.select(net, ctx)
        space.validate(g)
        arch = net.sampler()
        edges = list(space.edges)
        for kind in space.cell_kinds:
            ops = space.edge_ops(kind)
            w = arch.weights[kind]
            nonzero = {(src, dst, ops[e][k]) for e, (src, dst) in enumerate(edges) for k in range(len(ops[e]))
                       if w[e, k] > 0 and ops[e][k] != "none"}
            assert {(s_, d, op) for s_, d, op, _ in sel.last_sparse[kind]} == nonzero
            assert arch.host_selected[kind] == [[k for k in range(len(ops[e])) if w[e, k] > 0] for e in range(len(edges))]
            # the genotype is exactly the non-zero set, any number of inputs per node
            derived = {(src, space.n_inputs + n, op) for n, pairs in enumerate(g.nodes(kind)) for op, src in pairs}
            assert derived == nonzero
            assert len(g.cell(kind)) == len(nonzero)
        # transit cells run exactly the non-zero connections
        seen = executed_keys(net, lambda: net(x(2), arch))
        for i, c in enumerate(net.cells):
            body = c.body
            expected = {body.keys[e][k] for e, ks in enumerate(arch.host_selected[body.kind]) for k in ks}
            assert seen.get(i, set()) == expected  # engine cells skip zero weights too (engine_skip_zero)


def test_dst_sparsifies_with_high_thresholds_and_keeps_one_input():
    space, net = net_for("s2", dst_sampler)
    with torch.no_grad():
        for a in net.sampler.alphas.values():
            a.normal_(0, 5)  # distinct probabilities (no ties within 1e-4 of a node's maximum)
        for b in net.sampler.betas.values():
            b.fill_(1e4)  # t -> max_threshold: only each node's maximum survives
    arch = net.sampler()
    for kind in space.cell_kinds:
        counts = [sum(len(arch.host_selected[kind][e]) for e, (_, d) in enumerate(space.edges) if d == dst)
                  for dst in range(2, 6)]
        assert counts == [1, 1, 1, 1]
    assert net(x()).shape == (4, 4)  # in-degree-1 nodes run fine
    g = KeepNonzeroSelector(KeepNonzeroConfig()).select(
        net, SelectionContext(space=space, val_batches=None, train_batches=None, optimizer=None, seed=0))
    assert space.validate(g) is g
    assert g.degree("normal") == g.degree("reduce") == (1, 1, 1, 1)  # not padded: one input per node
    assert parse_genotype(g.to_string()) == g  # the nested form round-trips
    evalnet = space.build_eval_network(g, 8, 5, SHAPE)
    logits, _ = evalnet(x())
    assert logits.shape == (4, 4)


def test_dst_on_nb201_selector_and_forward():
    space, net = net_for("nb201", dst_sampler, layers=1)
    assert [c.body.is_engine for c in net.cells if hasattr(c, "body")] == [True, False, False]
    logits = net(x())
    logits.sum().backward()
    assert all(a.grad is not None for a in net.sampler.arch_parameters())
    g = KeepNonzeroSelector(KeepNonzeroConfig()).select(
        net, SelectionContext(space=space, val_batches=None, train_batches=None, optimizer=None, seed=0))
    assert space.validate(g) is g


def test_first_order_step_updates_alpha_and_beta():
    from harness.blocks import BilevelConfig, FirstOrderBilevel
    from harness.api import Batch

    space, net = net_for("s2", dst_sampler, layers=3)
    opt = FirstOrderBilevel(BilevelConfig(lr=0.2, lr_min=0.0, arch_lr=6e-4), net=net, steps_per_epoch=1, epochs=1)
    opt.set_progress(0, 1)
    before = [a.detach().clone() for a in net.sampler.arch_parameters()]
    b = Batch(x(4), torch.randint(0, 4, (4,)))
    stats = opt.step(net, b, b)
    assert math.isfinite(float(stats.train_loss))
    after = net.sampler.arch_parameters()
    assert not torch.equal(before[-1], after[-1].detach())  # beta moved (regulariser + val loss)
    assert any(not torch.equal(p, q.detach()) for p, q in zip(before[:2], after[:2]))
