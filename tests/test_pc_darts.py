"""PC-DARTS: what enters the ops, the shuffle, what a step keeps for backward, edge normalisation and the
derivation that multiplies edge and op weights, against hand computations and the official code's rules
(yuhuixu1993/PC-DARTS model_search.py: MixedOp.forward, channel_shuffle, Network.genotype)."""

import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from harness.blocks import (MixedCell, MixedConfig, PartialConfig, PartialMixedCell, SoftmaxConfig, SoftmaxSampler,
                            channel_shuffle)
from harness.cli import cli
from harness.genotypes import DartsGenotype
from harness.spaces.darts import EDGES
from tests.searchkit import REGISTRY, SHAPE, SHORT_RETRAIN, method_parts, random_batches


def test_channel_shuffle_is_the_shufflenet_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    # 4 groups of 2: channel g*2+i goes to i*4+g
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def _cell(net, kind="normal"):
    return next(m for m in net.modules() if getattr(m, "kind", None) == kind and hasattr(m, "ops"))


def test_only_a_quarter_of_the_channels_enter_the_ops():
    net, _, _, _ = method_parts("pc-darts", "s3", channels=8, layers=3)
    seen = []
    for body in (m for m in net.modules() if hasattr(m, "full_spec")):
        for edge_ops in body.ops:
            for op in edge_ops:
                op.register_forward_pre_hook(lambda mod, args, c=body.full_spec.channels: seen.append((c, args[0].shape[1])))
    (train, _), = random_batches(1)
    net(train.x)
    assert seen and all(inp == c // 4 for c, inp in seen)
    assert {c for c, _ in seen} == {8, 16, 32}  # 3 cells: C, then two reductions (2C, 4C)


def test_the_bypassed_channels_pass_unchanged_and_pooled_on_stride_two():
    space = REGISTRY.space("s3")
    net, sampler, _, _ = method_parts("pc-darts", "s3", channels=8, layers=3)
    body = _cell(net, "reduce")
    x = torch.randn(2, 16, 8, 8)
    arch = sampler()
    out = body.edge_forward(0, x, arch)  # edge 2<-0: stride 2
    # undo the shuffle: channel i*4+g came from g*4+i (16 channels, 4 groups of 4)
    unshuffled = out.view(2, 4, 4, 4, 4).transpose(1, 2).reshape(2, 16, 4, 4) / arch.edge_weights["reduce"][0]
    assert torch.allclose(unshuffled[:, 4:], F.max_pool2d(x[:, 4:], 2, 2), atol=1e-6)
    assert space.edge_ops("reduce")  # the space has ops on that edge


def test_a_step_keeps_far_less_for_backward_than_the_full_mixed_cell():
    """The memory PC-DARTS is about, counted on the CPU: the bytes of every tensor autograd saves in one
    forward of the same supernet with the partial cell (K=4) and with DARTS's mixed cell."""
    space = REGISTRY.space("s3")
    saved = {}
    for name, cell in (("partial", PartialMixedCell(PartialConfig(k=4))), ("mixed", MixedCell(MixedConfig()))):
        torch.manual_seed(0)
        sampler = SoftmaxSampler(SoftmaxConfig(), space)
        net = space.build_search_network(sampler, cell, 16, 5, SHAPE).train()
        seen, total = set(), [0]

        def pack(t):
            key = (t.data_ptr(), t.numel(), t.dtype)
            if key not in seen:
                seen.add(key)
                total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            net(torch.randn(16, 3, 16, 16)).sum()
        saved[name] = total[0]
    # the ops' activations shrink 4x; the stem, preprocessing and bypass add a share that does not
    print(f"saved for backward: {saved}, ratio {saved['partial'] / saved['mixed']:.3f}")
    assert saved["partial"] < 0.45 * saved["mixed"], saved


def test_edge_normalisation_is_a_softmax_over_each_nodes_edges():
    _, sampler, _, _ = method_parts("pc-darts", "s3")
    with torch.no_grad():
        sampler.betas["normal"].copy_(torch.linspace(-1, 2, 14))
    w = sampler().edge_weights["normal"]
    beta = sampler.betas["normal"].detach()
    for dst in range(2, 6):  # by hand, node by node
        edges = [e for e, (_, d) in enumerate(EDGES) if d == dst]
        exps = [math.exp(beta[e].item()) for e in edges]
        for e, v in zip(edges, exps):
            assert w[e].item() == pytest.approx(v / sum(exps), rel=1e-5)


def test_derivation_ranks_edges_by_op_weight_times_edge_weight():
    """Node 3 (edges from 0, 1, 2). Op weights alone rank edge 3<-0 first (0.9); times edge weights
    0.1 / 0.5 / 0.4 the products are 0.09 / 0.25 / 0.16, so PC-DARTS keeps 3<-1 and 3<-2."""
    _, sampler, _, _ = method_parts("pc-darts", "darts")
    ops = REGISTRY.space("darts").edge_ops("normal")[0]
    conv, skip, pool = ops.index("sep_conv_3x3"), ops.index("skip_connect"), ops.index("max_pool_3x3")
    n = len(ops)

    def row(top, p):  # log-probabilities: op ``top`` gets p, the rest share 1 - p
        probs = [(1 - p) / (n - 1)] * n
        probs[top] = p
        return [math.log(v) for v in probs]

    alpha = torch.zeros(14, n)
    beta = torch.zeros(14)
    node3 = [EDGES.index((s, 3)) for s in (0, 1, 2)]
    for e, top, p, ew in zip(node3, (conv, skip, pool), (0.9, 0.5, 0.4), (0.1, 0.5, 0.4)):
        alpha[e] = torch.tensor(row(top, p))
        beta[e] = math.log(ew)
    with torch.no_grad():
        sampler.alphas["normal"].copy_(alpha)
        sampler.betas["normal"].copy_(beta)
    genotype = REGISTRY.space("darts").derive(sampler.probabilities())
    assert isinstance(genotype, DartsGenotype)
    assert sorted(genotype.nodes("normal")[1]) == sorted([("skip_connect", 1), ("max_pool_3x3", 2)])


@pytest.mark.parametrize("epochs,first_arch_epoch", [(50, 15), (10, 3), (4, 1)])
def test_the_architecture_waits_fifteen_of_fifty_epochs(epochs, first_arch_epoch):
    _, _, _, opt = method_parts("pc-darts", "s2")
    opt.set_progress(first_arch_epoch - 1, epochs)
    assert not opt.arch_enabled
    opt.set_progress(first_arch_epoch, epochs)
    assert opt.arch_enabled


def test_the_paper_settings_and_a_step_moves_alpha_and_beta():
    net, sampler, _, opt = method_parts("pc-darts", "s2")
    c = opt.config
    assert (c.lr, c.lr_min, c.arch_lr, c.arch_beta1, c.arch_weight_decay) == (0.1, 0.0, 6e-4, 0.5, 1e-3)
    before = [p.detach().clone() for p in sampler.arch_parameters()]
    opt.set_progress(20, 50)
    (train, val), = random_batches(1)
    opt.step(net, train, val)
    assert len(before) == 4  # alpha and beta, normal and reduce
    assert all(not torch.equal(b, p) for b, p in zip(before, sampler.arch_parameters()))


def test_a_smoke_search_runs_on_a_darts_space_and_nb201(tmp_path):
    out = CliRunner().invoke(cli, ["run", "--plugin", "pc-darts", "--space", "s3,nb201", "--store",
                                   str(tmp_path / "s.sqlite"), "--preset", "smoke", "--quiet",
                                   *SHORT_RETRAIN], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count(" completed ") == 2
