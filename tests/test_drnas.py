"""DrNAS: Dirichlet samples on the simplex with the Dirichlet mean, pathwise gradients that match the analytic
gradient of the mean, the two regularisers against hand formulas, pruning, and the progressive stages (K and
op set per stage, widening that keeps what was learnt, warm-up per stage), against the official code's rules
(xiangning-chen/DrNAS utils.py process_step_vector / prune, DARTS-space/train_search.py, net2wider.py)."""

import math

import pytest
import torch
from click.testing import CliRunner

from harness.blocks import PartialMixedBody
from harness.cli import cli
from harness_drnas.plugin import DirichletConfig, DirichletSampler
from tests.searchkit import REGISTRY, SHORT_RETRAIN, method_parts, random_batches

ALPHA = [0.0, 1.0, -0.5]  # concentration elu(alpha) + 1 = [1, 2, e^-0.5]
CONC = [1.0, 2.0, math.exp(-0.5)]


def _sampler(space="s2", **config):
    torch.manual_seed(0)
    return DirichletSampler(DirichletConfig(**config), REGISTRY.space(space))


def test_samples_lie_on_the_simplex_with_the_dirichlet_mean():
    s = _sampler("s3")  # 3 ops per edge
    with torch.no_grad():
        for a in s.alphas.values():
            a.copy_(torch.tensor(ALPHA).expand_as(a))
    torch.manual_seed(1)
    draws = torch.stack([s().weights["normal"] for _ in range(3000)])  # (3000, 14, 3)
    assert torch.allclose(draws.sum(-1), torch.ones(3000, 14), atol=1e-5) and (draws >= 0).all()
    mean = draws.mean((0, 1))
    assert mean.tolist() == pytest.approx([c / sum(CONC) for c in CONC], abs=0.01)


def test_pathwise_gradients_reach_the_concentrations_as_the_mean_says():
    """d E[w . v] / d conc_j = (v_j - E[w . v]) / conc_0 for a Dirichlet; averaged rsample gradients match."""
    s = _sampler("s3")
    with torch.no_grad():
        for a in s.alphas.values():
            a.copy_(torch.tensor(ALPHA).expand_as(a))
    v = torch.tensor([1.0, -2.0, 0.5])
    torch.manual_seed(2)
    n = 4000
    total = sum((s().weights["normal"] * v).sum() for _ in range(n)) / (n * 14)
    total.backward()
    grad_alpha = s.alphas["normal"].grad.mean(0)
    c0, mean = sum(CONC), sum(c * vi for c, vi in zip(CONC, v.tolist())) / sum(CONC)
    d_conc = [(vj - mean) / c0 for vj in v.tolist()]
    d_elu = [1.0, 1.0, math.exp(-0.5)]  # d(elu(a) + 1)/da: 1 for a >= 0, e^a below
    expected = [d * e / 14 for d, e in zip(d_conc, d_elu)]
    assert grad_alpha.tolist() == pytest.approx(expected, abs=0.004)


def test_the_kl_regulariser_is_the_closed_form_dirichlet_kl_to_the_uniform_anchor():
    s = _sampler("s3", reg="kl", reg_scale=0.5)
    with torch.no_grad():
        for a in s.alphas.values():
            a.copy_(torch.tensor(ALPHA).expand_as(a))
    # KL(Dir(a) || Dir(b)) = lnG(a0) - sum lnG(a_i) - lnG(b0) + sum lnG(b_i) + sum (a_i - b_i)(psi(a_i) - psi(a0))
    a = torch.tensor(CONC, dtype=torch.float64)
    a0 = a.sum()
    kl = (torch.lgamma(a0) - torch.lgamma(a).sum() - math.lgamma(3.0) + 0.0
          + ((a - 1) * (torch.digamma(a) - torch.digamma(a0))).sum()).item()
    assert s.regularization().item() == pytest.approx(0.5 * kl * 14 * 2, rel=1e-5)  # 14 rows, 2 cell kinds


def test_the_l2_regulariser_has_adams_weight_decay_gradient():
    s = _sampler("s2")
    s.regularization().backward()
    for a in s.alphas.values():
        assert torch.allclose(a.grad, 1e-3 * a.detach())


def test_prune_keeps_the_largest_alphas_and_the_sample_renormalises_over_them():
    s = _sampler("darts")  # 8 ops
    row = torch.tensor([0.3, -1.0, 0.9, 0.1, 2.0, -0.2, 0.5, 0.0])
    with torch.no_grad():
        for a in s.alphas.values():
            a.copy_(row.expand_as(a))
    s.prune(4)
    kept = [0, 2, 4, 6]  # 0.3, 0.9, 2.0, 0.5
    expected = torch.zeros(8)
    expected[kept] = row[kept]
    assert torch.equal(s.alphas["normal"][0].detach(), expected)
    assert s.mask("normal")[0].nonzero().flatten().tolist() == kept
    w = s().weights["normal"]
    assert torch.allclose(w.sum(-1), torch.ones(14)) and (w[:, [1, 3, 5, 7]] == 0).all()
    p = s.probabilities()["normal"][0]
    assert p[kept].sum().item() == pytest.approx(1.0) and (p[[1, 3, 5, 7]] == 0).all()
    # a second prune ranks only what is still kept (official: masked entries -= 1e6 first)
    with torch.no_grad():
        s.alphas["normal"][0, 1] = 5.0  # a pruned op's alpha grows: it must not come back
    s.prune(2)
    assert s.mask("normal")[0].nonzero().flatten().tolist() == [2, 4]


def _bodies(net):
    return [m for m in net.modules() if isinstance(m, PartialMixedBody)]


def test_the_progressive_stages_prune_widen_and_keep_what_was_learnt():
    net, sampler, _, opt = method_parts("drnas", "darts", channels=12, layers=3, epochs=50)
    assert opt.config.stages == (6, 4) and opt.config.keeps == (4,)
    opt.set_progress(0, 50)
    assert {b.k for b in _bodies(net)} == {6} and bool(sampler.mask("normal").all())
    body = _bodies(net)[0]
    conv = next(m for m in body.ops[0].modules() if isinstance(m, torch.nn.Conv2d))
    old_weight, old_out = conv.weight.detach().clone(), conv.weight.shape[0]
    (train, val), = random_batches(1)
    opt.step(net, train, val)
    stepped = {id(p) for p in opt.w_params}
    old_buf = opt.w_opt.state[conv.weight]["momentum_buffer"].clone()
    opt.set_progress(25, 50)  # stage 2: K = 4, 4 ops per edge
    assert {b.k for b in _bodies(net)} == {4}
    assert sampler.mask("normal").sum(-1).tolist() == [4] * 14
    new_conv = next(m for m in _bodies(net)[0].ops[0].modules() if isinstance(m, torch.nn.Conv2d))
    assert new_conv.weight.shape[0] == old_out * 6 // 4
    assert torch.equal(new_conv.weight[:old_out, :old_weight.shape[1]], conv.weight.detach()[:, :old_weight.shape[1]])
    # the new weight optimizer holds the network's tensors now, and only them
    assert [id(p) for p in opt.w_params] == [id(p) for p in net.weight_parameters()]
    assert {id(p) for p in opt.w_opt.param_groups[0]["params"]} == {id(p) for p in net.weight_parameters()}
    assert stepped != {id(p) for p in opt.w_params}
    # the widened conv's momentum is the old one, widened the same way (net2wider's configure_optimizer)
    new_buf = opt.w_opt.state[new_conv.weight]["momentum_buffer"]
    assert new_buf.shape == new_conv.weight.shape
    assert torch.equal(new_buf[:old_out, :old_buf.shape[1]], old_buf)
    seen, ran = [], set()

    def record(channels, key):
        def hook(module, args):
            seen.append((channels, args[0].shape[1]))
            ran.add(key)
        return hook

    for b in _bodies(net):
        for e, ops in enumerate(b.ops):
            for j, op in enumerate(ops):
                op.register_forward_pre_hook(record(b.full_spec.channels, (b.kind, e, j)))
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    opt.step(net, train, val)
    assert seen and all(inp == c // 4 for c, inp in seen)
    # only the 4 kept ops of each edge run (the pruned ones have weight 0; official MixedOp skips them)
    kept = {(kind, e, j) for kind in ("normal", "reduce") for e, j in sampler.mask(kind).nonzero().tolist()}
    assert ran == kept
    assert any(not torch.equal(a, b) for a, b in zip(w0, net.weight_parameters()))


@pytest.mark.parametrize("epoch,arch", [(0, False), (9, False), (10, True), (24, True), (25, False), (34, False),
                                        (35, True), (49, True)])
def test_the_architecture_waits_ten_epochs_of_each_stage(epoch, arch):
    net, _, _, opt = method_parts("drnas", "darts", channels=12, layers=3)
    opt.set_progress(epoch, 50)
    assert opt.arch_enabled is arch


def test_on_nb201_there_is_one_stage_and_no_partial_channels():
    net, _, _, opt = method_parts("drnas", "nb201")
    opt.set_progress(0, 100)
    assert opt.config.stages == (1,) and {b.k for b in _bodies(net)} == {1}
    assert (opt.config.lr, opt.config.arch_lr, opt.arch_enabled) == (0.025, 3e-4, True)


def test_a_k_that_does_not_divide_the_channels_is_named():
    with pytest.raises(ValueError, match="16 channels are not divisible by k=6"):
        method_parts("drnas", "darts", channels=16, layers=3)


def test_a_smoke_search_runs_on_a_darts_space_and_nb201(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "drnas", "--space", "s3,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
