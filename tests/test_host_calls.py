"""Host work per step: the two helpers every bilevel optimizer calls on each weight step, made with fewer host
calls, still compute what torch's own functions compute; benchmarks/host_calls.py counts what it says it
counts."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.blocks import clip_grad_norm, fill_unused_grads

ROOT = Path(__file__).resolve().parents[1]


def _params(seed, with_grad, scale):
    g = torch.Generator().manual_seed(seed)
    shapes = [(16, 3, 3, 3), (16,), (32, 16, 1, 1), (7, 5), (1,)]
    ps = [nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    for p, on in zip(ps, with_grad):
        if on:
            p.grad = torch.randn(p.shape, generator=g) * scale
    return ps


@pytest.mark.parametrize("scale", [0.01, 10.0])  # under the max norm (scale 1) and over it (clipped)
def test_clip_grad_norm_is_torch_s_to_the_bit(scale):
    with_grad = [True, False, True, True, True]
    ours, theirs = _params(0, with_grad, scale), _params(0, with_grad, scale)
    total = clip_grad_norm(ours, 5.0)
    expected = nn.utils.clip_grad_norm_(theirs, 5.0)
    assert torch.equal(total, expected)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad)
    if scale == 10.0:  # it did clip: the gradients' 2-norm is now the max norm
        norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours if p.grad is not None]))
        assert norm == pytest.approx(5.0, rel=1e-5)


def test_clip_grad_norm_without_gradients_and_across_dtypes():
    assert float(clip_grad_norm(_params(1, [False] * 5, 1.0), 5.0)) == 0.0
    mixed, ref = _params(2, [True] * 5, 10.0), _params(2, [True] * 5, 10.0)
    for ps in (mixed, ref):  # one float64 parameter: torch's function takes the list
        ps[3].data, ps[3].grad = ps[3].data.double(), ps[3].grad.double()
    assert torch.equal(clip_grad_norm(mixed, 5.0), nn.utils.clip_grad_norm_(ref, 5.0))
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(mixed, ref))


def test_fill_unused_grads_gives_zero_gradients_of_each_shape_and_keeps_the_others():
    ps = _params(3, [True, False, False, True, False], 1.0)
    kept = {i: p.grad for i, p in enumerate(ps) if p.grad is not None}
    fill_unused_grads(ps)
    for i, p in enumerate(ps):
        assert p.grad.shape == p.shape
        if i in kept:
            assert p.grad is kept[i]
        else:
            assert not p.grad.any()
    filled = [ps[i].grad for i in (1, 2, 4)]  # one buffer for all of them (one fill kernel on a GPU)
    assert len({g.untyped_storage().data_ptr() for g in filled}) == 1
    # the optimizer's in-place update (clipping scales every gradient) touches each weight's own part only
    filled[0].add_(1.0)
    assert not filled[1].any() and not filled[2].any()
    # the next step hands out the same tensors again (made once), zeroed again whatever was done to them
    for p in ps:
        p.grad = None
    fill_unused_grads(ps)
    assert all(not p.grad.any() for p in ps) and ps[1].grad is filled[0]
    # a weight moved to another dtype since gets a zero of its own dtype
    ps[2].data, ps[2].grad = ps[2].data.double(), None
    fill_unused_grads(ps)
    assert ps[2].grad.dtype == torch.float64 and not ps[2].grad.any() and ps[2].grad.shape == ps[2].shape


def test_host_calls_counts_the_operators_a_caller_makes_not_the_ones_nested_inside():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import host_calls
    finally:
        sys.path.pop(0)
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        y = torch.nn.functional.conv2d(x, w)  # aten::conv2d, inside it convolution, _convolution, ...
        z = y.relu().sum()
        z.backward()  # the autograd engine calls each node's backward operators: those count
    calls = host_calls.top_level_calls(prof.events())
    assert calls["aten::conv2d"] == 1 and calls["aten::relu"] == 1 and calls["aten::sum"] == 1
    assert calls["aten::convolution"] == 0 and calls["aten::_convolution"] == 0  # nested in conv2d
    assert calls["aten::convolution_backward"] == 1 and calls["aten::threshold_backward"] == 1
