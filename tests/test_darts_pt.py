"""DARTS-PT: the perturbation selector, the fixed-alpha sampler and frozen-arch optimizer (toy, CPU)."""

import pytest
import torch

from harness.api import Batch, SelectionContext
from harness.errors import HarnessError
from harness.nn.cells import set_fast
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(in_channels=1, num_classes=4, resolution=8)


def build(space_name, sampler="softmax", cell="mixed", optimizer="first-order", channels=4, layers=1):
    # darts-pt searches the DARTS space without `none` (its S5), as the darts-pt recipe declares
    space = REGISTRY.space(space_name, REGISTRY.methods["darts-pt"].op_sets.get(space_name, "all"))
    s, c, o = (REGISTRY.component(k, n) for k, n in
               (("sampler", sampler), ("cell", cell), ("optimizer", optimizer)))
    torch.manual_seed(0)
    net = space.build_search_network(s.factory(s.config(), space=space), c.factory(c.config()),
                                     channels, layers, SHAPE)
    return space, net, o.factory(o.config(), net=net, steps_per_epoch=1, epochs=1)


def batch(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


def ctx_for(space, opt, val, train=None, seed=0):
    train = train or [batch(seed=7)]
    return SelectionContext(space=space, val_batches=lambda: iter(val), train_batches=lambda: iter(train),
                            optimizer=opt, seed=seed)


def pt(**kw):
    info = REGISTRY.component("selector", "pt")
    return info.factory(info.config(**kw))


def test_pt_picks_the_op_that_matters_where_argmax_picks_the_large_alpha():
    space, net, opt = build("nb201")
    ops = space.edge_ops("normal")[0]
    conv = ops.index("nor_conv_3x3")
    with torch.no_grad():
        # convolutions output exactly zero: useless; give nor_conv_3x3 the largest alpha everywhere
        for cell in net.cells:
            if hasattr(cell, "body"):
                for edge in cell.body.ops:
                    for k in (ops.index("nor_conv_1x1"), conv):
                        for m in edge[k].modules():
                            if isinstance(m, torch.nn.Conv2d):
                                m.weight.zero_()
        net.sampler.alphas["normal"].zero_()
        net.sampler.alphas["normal"][:, conv] = 3.0
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    net.train()
    with torch.no_grad():
        y = net(x).argmax(1)  # labels the full supernet gets 100% right
    val = [Batch(x, y)]
    argmax = REGISTRY.component("selector", "argmax")
    g_argmax = argmax.factory(argmax.config()).select(net, ctx_for(space, opt, val))
    assert set(g_argmax.ops) == {"nor_conv_3x3"}
    sel = pt(tune_steps=0)
    g_pt = sel.select(net, ctx_for(space, opt, val))
    assert "nor_conv_3x3" not in g_pt.ops and "nor_conv_1x1" not in g_pt.ops
    # where removing skip/avg_pool changes no prediction every removal ties at 100% and the first
    # candidate (none) is kept; the zero-output convolutions are never the op that matters
    assert set(g_pt.ops) & {"skip_connect", "avg_pool_3x3"}
    assert len([d for d in sel.decisions if d[0] == "op"]) == 6
    assert not [d for d in sel.decisions if d[0] == "drop"]  # no topology step on nb201


@pytest.mark.parametrize("space_name", ["s2", "darts"])
def test_topology_leaves_two_inputs_per_node(space_name):
    space, net, opt = build(space_name, layers=2)
    set_fast(net, True)  # the same math (tests/test_fused.py), 2-3x faster for these 200+ measurements
    sel = pt(tune_steps=0)
    g = sel.select(net, ctx_for(space, opt, [batch(seed=2)]))
    assert space.validate(g) is g
    assert space.parse(g.to_string()) == g  # (the selector contract: tests/test_components_contract.py)
    for kind in space.cell_kinds:
        decided = {e for d in sel.decisions if d[0] == "op" and d[1] == kind for e in [d[2]]}
        dropped = {d[2] for d in sel.decisions if d[0] == "drop" and d[1] == kind}
        assert decided == set(range(14)) and len(dropped) == 1 + 2 + 3
        kept = set(range(14)) - dropped
        for node in range(2, 6):
            assert sum(1 for e in kept if space.edges[e][1] == node) == 2
        # the genotype reads off exactly the kept edges and their decided ops
        ops = {d[2]: space.edge_ops(kind)[d[2]][d[3]] for d in sel.decisions if d[0] == "op" and d[1] == kind}
        cell = g.cell(kind)
        got = {space.edges.index((src, 2 + i // 2)) for i, (_, src) in enumerate(cell)}
        assert got == kept
        for i, (op, src) in enumerate(cell):
            assert op == ops[space.edges.index((src, 2 + i // 2))] and op != "none"


# darts-pt's pt_project loops (@4ec3149): sota/cnn/projection.py L126-183 (tune_epochs = 5*16 + 1 = 81,
# a decision at every epoch % 5 == 0: 14 op points, then 3 topology points) and nasbench201/projection.py
# L76-90 (tune_epochs = 5*(6-1) = 25, decisions at epoch % 5 == 0 or the last epoch)
REFERENCE_SCHEDULE = {
    "s2": (list(range(0, 81, 5)), 81),
    "nb201": ([0, 5, 10, 15, 20, 24], 25),
}


@pytest.mark.parametrize("space_name", ["nb201", "s2"])
def test_decisions_and_fine_tuning_follow_the_reference_schedule(space_name):
    space, net, opt = build(space_name)
    steps = []
    step = opt.step

    def counting_step(*args, **kw):
        steps.append(opt.w_opt.param_groups[0]["lr"])
        return step(*args, **kw)

    opt.step = counting_step
    lr_before = opt.w_opt.param_groups[0]["lr"]
    sel = pt(tune_steps=1, max_val_batches=1)
    a0 = [a.detach().clone() for a in net.sampler.arch_parameters()]
    sel.select(net, ctx_for(space, opt, [batch(seed=2)]))
    epochs, total = REFERENCE_SCHEDULE[space_name]
    assert sel.decision_epochs == epochs
    assert sel.tuned_epochs == total and len(steps) == total
    # the reference tunes at 0.025 / 10 with no scheduler step on either space (projection.py L134-136)
    assert steps == [0.0025] * total
    assert opt.w_opt.param_groups[0]["lr"] == lr_before  # restored
    # first-order tuning keeps updating alpha
    assert any(not torch.equal(a, b) for a, b in zip(net.sampler.arch_parameters(), a0))


def test_none_is_a_candidate_on_s3_as_in_the_reference():
    """darts-pt loops over every op of the edge (projection.py L39): on S3 `none` is measured too."""
    space, net, opt = build("s3")
    measured = []
    sel = pt(tune_steps=0, max_val_batches=1)
    measure = sel._measure
    sel._measure = lambda n, c, w: (measured.append(w.mask_op), measure(n, c, w))[1]
    sel.select(net, ctx_for(space, opt, [batch(seed=2)]))
    op_masks = [m for m in measured if m is not None]
    assert len(op_masks) == 2 * 14 * 3  # both cell kinds, 14 edges, all 3 ops including none
    assert {k for _, _, k in op_masks} == {0, 1, 2} and space.edge_ops("normal")[0][0] == "none"


def test_seven_op_darts_space_has_seven_candidates():
    space = REGISTRY.space("darts", "no-none")
    s, c, o = (REGISTRY.component(k, n) for k, n in (("sampler", "softmax"), ("cell", "mixed"),
                                                      ("optimizer", "first-order")))
    torch.manual_seed(0)
    net = space.build_search_network(s.factory(s.config(), space=space), c.factory(c.config()), 4, 1, SHAPE)
    set_fast(net, True)  # the same math (tests/test_fused.py), about twice as fast for 196 measurements
    opt = o.factory(o.config(), net=net, steps_per_epoch=1, epochs=1)
    measured = []
    sel = pt(tune_steps=0, max_val_batches=1)
    measure = sel._measure
    sel._measure = lambda n, cx, w: (measured.append(w.mask_op), measure(n, cx, w))[1]
    g = sel.select(net, ctx_for(space, opt, [batch(seed=2)]))
    assert len([m for m in measured if m is not None]) == 2 * 14 * 7
    assert all(op != "none" for kind in ("normal", "reduce") for op, _ in g.cell(kind))


def test_selector_restores_the_sampler_and_mode():
    space, net, opt = build("nb201")
    original = net.sampler
    net.eval()
    sel = pt(tune_steps=1)
    sel.select(net, ctx_for(space, opt, [batch()]))
    assert net.sampler is original and not net.training
    with pytest.raises(HarnessError, match="validation data"):
        sel.select(net, ctx_for(space, opt, []))
    assert net.sampler is original
    # a projected forward during selection never leaked into the sampler itself
    assert type(net.sampler()).__name__ == "ArchWeights"


def test_pt_on_single_path_sampler():
    space, net, opt = build("s2", sampler="gumbel", cell="single-path")
    original = net.sampler
    g = pt(tune_steps=1).select(net, ctx_for(space, opt, [batch(seed=2)]))
    assert space.validate(g) is g and net.sampler is original


def test_projected_single_path_forward_is_the_same_on_the_fast_path():
    """An edge the projection switched off is skipped on the eager single-path cell (host_active) and masked
    on the fast one (active, on the device): the two forwards agree."""
    import copy

    from harness.nn.cells import set_fast
    from harness_darts_pt.components import ProjectedSampler

    space, net, opt = build("s2", sampler="gumbel", cell="single-path")
    net.sampler = ProjectedSampler(net.sampler, space, single_path=True)
    net.sampler.dropped["normal"].add(0)
    net.sampler.decided["reduce"][3] = 1  # s2: two ops per edge
    fast = copy.deepcopy(net)
    set_fast(fast, True)
    x = batch().x
    torch.manual_seed(4)
    arch = net.sampler()
    assert arch.host_active["normal"][0] is False and not bool(arch.active["normal"][0])
    torch.testing.assert_close(fast(x, arch), net(x, arch), rtol=1e-5, atol=1e-6)


def test_fixed_uniform_alpha_never_moves():
    for optimizer in ("first-order", "frozen-arch"):
        space, net, opt = build("s2", sampler="fixed-uniform", optimizer=optimizer)
        assert opt.needs_val_batch is (optimizer == "first-order")
        w = net.sampler().weights["normal"]
        torch.testing.assert_close(w, torch.full_like(w, 0.5))
        w0 = [p.detach().clone() for p in net.weight_parameters()]
        opt.set_progress(0, 1)
        for _ in range(2):
            opt.step(net, batch(), batch(seed=5) if opt.needs_val_batch else None)
        assert all(torch.equal(a, torch.zeros_like(a)) for a in net.sampler.arch_parameters())
        assert any(not torch.equal(p, q) for p, q in zip(net.weight_parameters(), w0))
    # with a trainable sampler frozen-arch is plain first-order
    space, net, opt = build("s2", optimizer="frozen-arch")
    assert opt.needs_val_batch
    a0 = [a.detach().clone() for a in net.sampler.arch_parameters()]
    opt.set_progress(0, 1)
    opt.step(net, batch(), batch(seed=5))
    assert any(not torch.equal(a, b) for a, b in zip(net.sampler.arch_parameters(), a0))


def test_methods_registered():
    m = REGISTRY.methods["darts-pt"]
    assert m.components() == {"sampler": "softmax", "optimizer": "first-order", "selector": "pt", "cell": "mixed"}
    f = REGISTRY.methods["darts-pt-fixed-alpha"]
    assert (f.sampler, f.optimizer, f.selector) == ("fixed-uniform", "frozen-arch", "pt")
