"""Contract tests parametrized over every registered component, on a toy configuration."""

import dataclasses

import pytest
import torch

from harness.api import ArchWeights, Batch, StepStats
from harness.plugins import load_registry
from harness.spaces import NetShape

REGISTRY = load_registry()
SHAPE = NetShape(in_channels=1, num_classes=4, resolution=8)
SPACES = sorted(REGISTRY.spaces)


def build(space_name, sampler="softmax", cell="mixed", optimizer="first-order", channels=4, layers=3):
    space = REGISTRY.space(space_name)
    s_info, c_info = REGISTRY.component("sampler", sampler), REGISTRY.component("cell", cell)
    torch.manual_seed(0)
    net = space.build_search_network(s_info.factory(s_info.config(), space=space),
                                     c_info.factory(c_info.config()), channels, layers, SHAPE)
    o_info = REGISTRY.component("optimizer", optimizer)
    opt = o_info.factory(o_info.config(), net=net, steps_per_epoch=2, epochs=2)
    return space, net, opt


# paper settings some components default to that would make a toy test take minutes
TOY = {"tune_epochs_per_decision": 0, "tune_steps": 1, "max_val_batches": 1}


def toy_config(info):
    names = {f.name for f in dataclasses.fields(info.config)}
    return info.config(**{k: v for k, v in TOY.items() if k in names})


def batch(n=6):
    return Batch(torch.randn(n, 1, 8, 8), torch.randint(0, 4, (n,)))


@pytest.mark.parametrize("kind,name", [(k, n) for k in ("optimizer", "cell")
                                       for n in sorted(REGISTRY.components[k])])
def test_every_optimizer_and_cell_type_passes_the_public_conformance_checks(kind, name):
    """harness.testing, as a third-party author runs it on their own plugin (samplers: on every space in
    test_sampler_contract; selectors: test_selector_returns_a_valid_genotype)."""
    from harness.testing import check_component

    info = REGISTRY.component(kind, name)
    check_component(info, config=toy_config(info))


@pytest.mark.parametrize("space_name", SPACES)
def test_every_space_passes_the_public_conformance_checks(space_name):
    from harness.testing import check_space

    check_space(REGISTRY.spaces[space_name])


def test_every_config_is_a_frozen_dataclass_with_defaults():
    for kind, table in REGISTRY.components.items():
        for name, info in table.items():
            assert dataclasses.is_dataclass(info.config), (kind, name)
            cfg = info.config()
            with pytest.raises(dataclasses.FrozenInstanceError):
                for f in dataclasses.fields(cfg):
                    setattr(cfg, f.name, getattr(cfg, f.name))
                    break
                else:
                    raise dataclasses.FrozenInstanceError


@pytest.mark.parametrize("sampler", sorted(REGISTRY.components["sampler"]))
@pytest.mark.parametrize("space_name", SPACES)
def test_sampler_contract(sampler, space_name):
    from harness.testing import check_sampler

    space = REGISTRY.space(space_name)
    info = REGISTRY.component("sampler", sampler)
    s = check_sampler(info.factory, info.config(), space=space, name=sampler, plugin=info.plugin)
    s.set_progress(0, 3)
    arch = s()
    assert isinstance(arch, ArchWeights)
    for kind in space.cell_kinds:
        assert not s.probabilities()[kind].requires_grad
    assert all(a.requires_grad for a in s.arch_parameters())
    # gradients reach the architecture parameters through the weights (and the edge weights, for
    # topology samplers): a random linear read-out of them (a plain sum would be constant under a
    # softmax) gives every arch parameter a non-zero gradient, unless the sampler is frozen
    g = torch.Generator().manual_seed(0)
    outputs = list(arch.weights.values()) + list((arch.edge_weights or {}).values())
    sum((w * torch.randn(w.shape, generator=g)).sum() for w in outputs).backward()
    for a in s.arch_parameters():
        assert a.grad is not None, sampler
        if getattr(s, "frozen", False):
            assert torch.count_nonzero(a.grad) == 0, sampler
        else:
            assert torch.count_nonzero(a.grad) > 0, (sampler, tuple(a.shape))


# every sampler x cell pairing on the spaces whose edges differ in kind: darts (all 8 ops on every edge, 'none'
# included), s1 (another op pair per edge), s4 (noise) and nb201; s2's and s3's ops ({skip, sep 3x3}, plus 'none')
# are darts's own, built alike on uniform edges (the suite's time: 6.8 s of CPU for the two, 2026-12-05)
PAIRING_SPACES = [s for s in SPACES if s not in ("s2", "s3")]


@pytest.mark.parametrize("cell", sorted(REGISTRY.components["cell"]))
@pytest.mark.parametrize("sampler", sorted(REGISTRY.components["sampler"]))
@pytest.mark.parametrize("space_name", PAIRING_SPACES)
def test_supernet_forward_and_arch_gradient(cell, sampler, space_name):
    from harness.testing import Mismatch, check_together

    c_info, s_info = REGISTRY.component("cell", cell), REGISTRY.component("sampler", sampler)
    pair = {"cell": c_info.factory(c_info.config()),
            "sampler": s_info.factory(s_info.config(), space=REGISTRY.space(space_name))}
    try:
        check_together(pair)
    except Mismatch:
        # a pairing the harness refuses before a run (a single-path cell behind a sampler that names no
        # op per edge) is one that would fail in the run's first forward: the declaration is not spurious
        space, net, _ = build(space_name, sampler=sampler, cell=cell)
        with pytest.raises(TypeError):
            net(batch().x)
        return
    if cell == "engine-transit" and space_name == "s4":
        pytest.skip("a transit cell that derives 'noise' on every edge cuts the engine cells' arch gradient "
                    "(noise detaches its input): a property of the method on S4, pinned by "
                    "test_fidelity.py::test_entrannas_on_s4_arch_gradient_is_cut_when_transit_cells_derive_noise")
    space, net, _ = build(space_name, sampler=sampler, cell=cell)
    logits = net(batch().x)
    assert logits.shape == (6, 4)
    logits.sum().backward()
    grads = [a.grad for a in net.sampler.arch_parameters()]
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("optimizer", sorted(REGISTRY.components["optimizer"]))
@pytest.mark.parametrize("space_name", ["s2", "nb201"])
def test_optimizer_step_moves_weights_and_arch(optimizer, space_name):
    space, net, opt = build(space_name, optimizer=optimizer)
    opt.set_progress(0, 2)
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    a0 = [a.detach().clone() for a in net.sampler.arch_parameters()]
    stats = opt.step(net, batch(), batch() if opt.needs_val_batch else None)
    assert isinstance(stats, StepStats) and torch.isfinite(stats.train_loss)
    assert any(not torch.equal(p, q) for p, q in zip(net.weight_parameters(), w0))
    assert any(not torch.equal(a, b) for a, b in zip(net.sampler.arch_parameters(), a0))


# pt on the DARTS space (268 perturbation measurements of the 8-op supernet, 6.5 s) is left to
# tests/test_darts_pt.py::test_topology_leaves_two_inputs_per_node: the same selection on that space's supernet,
# its genotype validated and read back
@pytest.mark.parametrize("space_name, selector", [(sp, sel) for sp in SPACES
                                                  for sel in sorted(REGISTRY.components["selector"])
                                                  if (sp, sel) != ("darts", "pt")])
def test_selector_returns_a_valid_genotype(selector, space_name):
    from harness.api import SelectionContext

    space, net, opt = build(space_name)
    info = REGISTRY.component("selector", selector)
    ctx = SelectionContext(space=space, val_batches=lambda: iter([batch()]), train_batches=lambda: iter([batch()]),
                           optimizer=opt, seed=0)
    g = info.factory(toy_config(info)).select(net, ctx)
    assert space.validate(g) is g
    assert space.parse(g.to_string()) == g
    if space_name == "nb201":  # and the public check, as an author runs it (its own toy supernet)
        from harness.testing import check_selector

        check_selector(info.factory, toy_config(info), space=space, name=selector, plugin=info.plugin)


def test_second_order_matches_finite_difference_formula():
    """The unrolled arch gradient equals dL_val(w')/dalpha - lr * HVP, computed here independently."""
    space, net, opt = build("s2", optimizer="second-order")
    opt.set_progress(0, 2)
    torch.manual_seed(1)
    train, val = batch(), batch()
    net.eval()  # deterministic BN for comparing two computations (batch statistics still used? no: eval)
    import torch.nn.functional as F

    # reference: explicit w' with plain tensors
    w = [p.detach().clone() for p in net.weight_parameters()]
    a = net.sampler.arch_parameters()
    lr, wd = opt.lr, opt.config.weight_decay
    loss = F.cross_entropy(net(train.x), train.y)
    g = torch.autograd.grad(loss, net.weight_parameters(), allow_unused=True)
    g = [torch.zeros_like(p) if x is None else x for x, p in zip(g, w)]
    with torch.no_grad():
        for p, gi, wi in zip(net.weight_parameters(), g, w):
            p.copy_(wi - lr * (gi + wd * wi))
    lv = F.cross_entropy(net(val.x), val.y)
    da = torch.autograd.grad(lv, a, retain_graph=True)
    dw = torch.autograd.grad(lv, net.weight_parameters(), allow_unused=True)
    dw = [torch.zeros_like(p) if x is None else x for x, p in zip(dw, w)]
    eps = 0.01 / torch.cat([d.flatten() for d in dw]).norm()
    grads = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, wi, d in zip(net.weight_parameters(), w, dw):
                p.copy_(wi + sign * eps * d)
        grads.append(torch.autograd.grad(F.cross_entropy(net(train.x), train.y), a))
    with torch.no_grad():
        for p, wi in zip(net.weight_parameters(), w):
            p.copy_(wi)
    expected = [d - lr * (gp - gn) / (2 * eps) for d, gp, gn in zip(da, *grads)]

    opt._pending_train = train
    a_before = [x.detach().clone() for x in a]
    opt.a_opt.step = lambda: None  # keep alpha in place to read the gradient it would apply
    opt.arch_step(net, val)
    for x, e, b in zip(a, expected, a_before):
        assert torch.equal(x.detach(), b)
        torch.testing.assert_close(x.grad, e, rtol=1e-4, atol=1e-6)
    # and the weights are restored exactly
    for p, wi in zip(net.weight_parameters(), w):
        torch.testing.assert_close(p.detach(), wi, rtol=0, atol=1e-6)


def test_gdas_runs_only_the_sampled_op():
    space, net, _ = build("s2", sampler="gumbel", cell="single-path")
    calls = []
    for cell in net.cells:
        for edge in cell.body.ops:
            for k, op in enumerate(edge):
                op.register_forward_hook(lambda m, i, o, k=k: calls.append(k))
    net(batch().x)
    n_edges = sum(len(cell.body.ops) for cell in net.cells)
    assert len(calls) >= n_edges  # one op (module) per edge at least, not every op
    all_ops = sum(len(edge) for cell in net.cells for edge in cell.body.ops)
    assert len(calls) < all_ops


def test_gumbel_tau_schedule():
    space = REGISTRY.space("nb201")
    info = REGISTRY.component("sampler", "gumbel")
    s = info.factory(info.config(), space=space)
    s.set_progress(0, 250)
    assert s.tau == pytest.approx(10.0)
    s.set_progress(249, 250)
    assert s.tau == pytest.approx(0.1)


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("method_name", sorted(REGISTRY.methods))
def test_every_method_takes_a_search_step_on_every_space_it_applies_to(method_name, space_name):
    """Each registered method, resolved as a run would resolve it, takes one smoke search step."""
    from harness.config import resolve

    method = REGISTRY.method(method_name)
    if method.spaces is not None and space_name not in method.spaces:
        pytest.skip(f"{method_name} does not apply to {space_name}")
    spec = resolve(REGISTRY, method, space_name, "digits", 0, "smoke", {}, [])
    space = REGISTRY.space(space_name)
    comp = {k: REGISTRY.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    net = space.build_search_network(comp["sampler"].factory(spec.hparams["sampler"], space=space),
                                     comp["cell"].factory(spec.hparams["cell"]), 4, 3, SHAPE)
    opt = comp["optimizer"].factory(spec.hparams["optimizer"], net=net, steps_per_epoch=1, epochs=1)
    opt.set_progress(0, 1)
    net.sampler.set_progress(0, 1)
    stats = opt.step(net, batch(), batch() if opt.needs_val_batch else None)
    assert torch.isfinite(stats.train_loss)
