"""Spaces exactly as SPEC-FACTS §1-3, and the parameter/FLOP anchors of §5."""

import pytest
import torch

from harness.errors import HarnessError
from harness.evaluate import count_flops, count_parameters
from harness.plugins import load_registry
from harness.spaces import NetShape
from tests.test_genotypes import ARCH_11, DARTS_V2, SPARSE

NB201_ANCHORS = {  # arch string -> (params, MFLOPs) from the benchmark's own records (SPEC-FACTS §5.3)
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": (129306, 15.6474),
    ARCH_11: (802426, 113.9514),
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|": (101306, 11.7152),
}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_builtin_spaces(registry):
    assert {"darts", "s1", "s2", "s3", "s4", "nb201"} <= set(registry.spaces)


def test_edge_order_and_s1_pairs(registry):
    s1 = registry.space("s1")
    assert s1.edges[:5] == ((0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert s1.edge_ops("normal")[5] == ("max_pool_3x3", "skip_connect")
    assert s1.edge_ops("normal")[12] == ("dil_conv_3x3", "dil_conv_5x5")
    assert s1.edge_ops("reduce")[1] == ("max_pool_3x3", "dil_conv_3x3")
    assert registry.space("s3").edge_ops("normal")[0] == ("none", "skip_connect", "sep_conv_3x3")
    assert registry.space("s4").edge_ops("reduce")[13] == ("noise", "sep_conv_3x3")
    assert registry.space("nb201").edge_ops("normal")[0] == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_darts_v2_parameter_count(registry):
    space = registry.space("darts")
    net = space.build_eval_network(space.parse(DARTS_V2), 36, 20, NetShape(3, 10, 32), auxiliary=True)
    assert count_parameters(net) == 3_349_342
    assert sum(p.numel() for p in net.parameters()) == 3_825_768  # auxiliary head included


def test_darts_supernet_parameter_count(registry):
    space = registry.space("darts")
    sampler = registry.component("sampler", "softmax").factory(registry.component("sampler", "softmax").config(), space=space)
    cell = registry.component("cell", "mixed").factory(registry.component("cell", "mixed").config())
    net = space.build_search_network(sampler, cell, 16, 8, NetShape(3, 10, 32))
    assert sum(p.numel() for p in net.weight_parameters()) == 1_930_618


def test_variable_in_degree_eval_network(registry):
    """A DST genotype retrains: every listed op is built and summed into its node."""
    from harness.genotypes import DartsGenotype
    from harness.nn.ops import darts_op

    space = registry.space("darts")
    g = space.parse(SPARSE)
    shape = NetShape(3, 10, 32)
    net = space.build_eval_network(g, 8, 3, shape)  # cells: normal (C=8), reduce, reduce
    normal = [list(n) for n in g.nodes("normal")]
    fewer = DartsGenotype.from_nodes([normal[0][:2]] + normal[1:], g.normal_concat,
                                     g.nodes("reduce"), g.reduce_concat)
    extra = count_parameters(net) - count_parameters(space.build_eval_network(fewer, 8, 3, shape))
    assert extra == count_parameters(darts_op("sep_conv_5x5", 8, 1, affine=True, search=False))
    net.train()
    net.drop_path_prob = 0.2
    logits, _ = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    with pytest.raises(HarnessError, match="not in space 's2'"):
        registry.space("s2").validate(g)


@pytest.mark.parametrize("arch", sorted(NB201_ANCHORS))
def test_nb201_eval_network_matches_benchmark(registry, arch):
    space = registry.space("nb201")
    net = space.build_eval_network(space.parse(arch), 16, 5, NetShape(3, 10, 32))
    params, mflops = NB201_ANCHORS[arch]
    assert count_parameters(net) == params
    assert count_flops(net, NetShape(3, 10, 32)) / 1e6 == pytest.approx(mflops, abs=1e-4)


def test_darts_derivation_rule(registry):
    space = registry.space("darts")
    p = torch.full((14, 8), 0.01)
    p[:, 0] = 0.9  # 'none' dominates everywhere: it must be ignored
    p[0, 4] = 0.5  # node 2: edge 2<-0 sep_conv_3x3 strongest, then edge 2<-1
    p[1, 6] = 0.3
    p[4, 3] = 0.8  # node 3: edge 3<-2 skip strongest
    p[2, 5] = 0.2
    g = space.derive({"normal": p, "reduce": p})
    assert g.normal[:2] == (("sep_conv_3x3", 0), ("dil_conv_3x3", 1))
    assert g.normal[2:4] == (("skip_connect", 2), ("sep_conv_5x5", 0))
    assert all(op != "none" for op, _ in g.normal + g.reduce)


def test_nb201_derivation_keeps_none(registry):
    space = registry.space("nb201")
    p = torch.zeros(6, 5)
    p[:, 0] = 1.0
    p[3, 3] = 2.0
    assert space.derive({"normal": p}).ops == ("none", "none", "none", "nor_conv_3x3", "none", "none")


def test_out_of_space_genotypes_are_rejected(registry):
    with pytest.raises(HarnessError, match="sep_conv_3x3.*not in space 's1'"):
        registry.space("s1").parse(DARTS_V2)
    with pytest.raises(HarnessError, match="takes DARTS genotypes"):
        registry.space("darts").parse(ARCH_11)
    with pytest.raises(HarnessError, match="conv_9x9.*valid ops"):
        registry.space("nb201").parse(ARCH_11.replace("avg_pool_3x3~1", "conv_9x9~1"))


def test_noise_op_ignores_input_and_passes_no_gradient():
    from harness.nn.ops import darts_op

    op = darts_op("noise", 4, 2, affine=False, search=True)
    x = torch.ones(2, 4, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 4, 4, 4) and not y.requires_grad
    assert abs(float(y.mean())) < 0.5 and 0.5 < float(y.std()) < 1.5


@pytest.mark.parametrize("resolution, channels", [(8, 1), (16, 3), (28, 1), (32, 3)])
def test_eval_network_with_auxiliary_head_fits_any_input_size(registry, resolution, channels):
    space = registry.space("darts")
    net = space.build_eval_network(space.parse(DARTS_V2), 8, 5, NetShape(channels, 10, resolution), auxiliary=True)
    net.train()
    logits, aux = net(torch.randn(2, channels, resolution, resolution))
    assert logits.shape == aux.shape == (2, 10)
