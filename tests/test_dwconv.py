"""harness.nn.dwconv's Triton depthwise kernels compute torch's depthwise convolution and its gradients (in
Triton's interpreter on this CPU, float64, against ``F.conv2d`` on the input channels each output channel
reads), and the fused cell run through them follows the eager cell's float64 trajectory."""


import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed (it comes with torch's CUDA wheels)")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from harness.nn import dwconv  # noqa: E402
from tests.searchkit import captured_step_matches_eager, compiled_forms, uncaptured_fast_step  # noqa: E402


def reference(x, w, stride, padding, dilation, k, relu, dest=None):
    """torch's grouped convolution on the input channel each output channel reads, (o // k) % C, gathered
    explicitly, its output channel o then put at dest[o]: an independent statement of the channel maps the
    kernels implement."""
    c, o = x.shape[1], w.shape[0]
    xs = (x.clamp_min(0) if relu else x).index_select(1, torch.tensor([(j // k) % c for j in range(o)]))
    y = F.conv2d(xs, w, None, stride, padding, dilation, o)
    if dest is None:
        return y
    out = torch.empty_like(y)
    for j in range(o):
        out[:, int(dest[j])] = y[:, j]
    return out


# (N, C, H, W, O, k, kernel, stride, padding, dilation, relu, remap): DARTS's sep_conv_3x3/5x5 and
# dil_conv_3x3/5x5 geometries at stride 1 and 2, odd sizes, k filters per channel (the spread form), a shared
# input read by O = m*C outputs (k = 1), the fused ReLU, output channels written to a permutation (dest)
GEOMETRIES = [
    (2, 3, 7, 6, 6, 2, 3, 1, 1, 1, False, True),
    (2, 3, 8, 8, 9, 1, 5, 2, 4, 2, True, False),
    (3, 2, 6, 6, 4, 2, 3, 2, 1, 1, True, True),
    (2, 2, 5, 5, 4, 1, 5, 1, 2, 1, False, False),
    (1, 2, 4, 4, 2, 1, 3, 2, 2, 2, False, False),
    (2, 4, 9, 9, 4, 1, 3, 1, 2, 2, True, True),
    # whole tiles (the forward's EVEN form, its taps' shifts as constants): a dilated 3x3 and a 5x5 at stride 1
    (2, 4, 8, 8, 8, 2, 3, 1, 2, 2, False, True),
    (2, 2, 4, 4, 4, 1, 5, 1, 2, 1, True, False),
]


# the stride-2 geometries with each of the weight gradient's accumulator layouts (dwconv.DW_PIXELS_MAJOR: which
# one a compiled run takes depends on Triton's version), the stride-1 ones with the one they always take
CASES = [(g, pm) for g in GEOMETRIES for pm in ((False, True) if g[7] == 2 else (None,))]


@pytest.mark.parametrize("geometry,pixels_major", CASES)
def test_kernels_compute_torchs_depthwise_convolution_and_its_gradients(geometry, pixels_major, interpret,
                                                                         overflow_checked, monkeypatch):
    monkeypatch.setattr(dwconv, "DW_PIXELS_MAJOR", pixels_major)
    n, c, h, w, o, k, ks, s, p, d, relu, remap = geometry
    gen = torch.Generator().manual_seed(sum(geometry))
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=gen, requires_grad=True)
    wt = torch.randn(o, 1, ks, ks, dtype=torch.float64, generator=gen, requires_grad=True)
    dest = torch.randperm(o, generator=gen) if remap else None
    y = dwconv.depthwise_conv(x, wt, (s, s), (p, p), (d, d), k, relu, dest)
    x2, w2 = x.detach().clone().requires_grad_(), wt.detach().clone().requires_grad_()
    y2 = reference(x2, w2, (s, s), (p, p), (d, d), k, relu, dest)
    assert y.shape == y2.shape
    g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    dx, dw = torch.autograd.grad(y, (x, wt), g)
    dx2, dw2 = torch.autograd.grad(y2, (x2, w2), g)
    for got, want in ((y, y2), (dx, dx2), (dw, dw2)):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), float((got - want).abs().max())


def test_only_the_gradients_a_backward_uses_are_computed(interpret, monkeypatch):
    """An architecture step's backward asks for no weight gradient: the weight kernel must not run."""
    calls = []
    real = dwconv.grad_weight
    monkeypatch.setattr(dwconv, "grad_weight", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    y = dwconv.depthwise_conv(x, wt, (1, 1), (1, 1), (1, 1))
    torch.autograd.grad(y.sum(), x)
    assert not calls
    torch.autograd.grad(dwconv.depthwise_conv(x, wt, (1, 1), (1, 1), (1, 1)).sum(), wt)
    assert calls == [1]


def test_why_not_names_the_device_and_the_dtype(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert "device cpu" in dwconv.why_not(torch.zeros(1))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dwconv.why_not(torch.zeros(1)) is None  # (tests/conftest.py set it before Triton's import)
    assert "torch.float16" in dwconv.why_not(torch.zeros(1, dtype=torch.float16))


def _times_body(x_ptr, y_ptr, m):
    offs = tl.arange(0, 4)
    tl.store(y_ptr + offs, tl.load(x_ptr + offs) * m)


def _times():
    """The kernel, made under the ``interpret`` fixture: triton.jit reads TRITON_INTERPRET when it is called, and
    the suite leaves it "0" outside the tests that ask for the interpreter (tests/conftest.py)."""
    return triton.jit(_times_body)


def test_overflow_checked_fails_a_launch_whose_int32_arithmetic_overflows(interpret, overflow_checked):
    """What the kernel-form tests above rely on (tests/conftest.py): with the fixture the interpreter fails a
    launch on an int32 product past 2**31 (2**20 * 2**12 wraps to 0); the suite's other tests run without it."""
    x = torch.full((4,), 2**20, dtype=torch.int32)
    with pytest.raises(Exception, match="int32 overflow detected for operation mul"):
        _times()[(1,)](x, torch.empty_like(x), 2**12)
    _times()[(1,)](x, y := torch.empty_like(x), 2**10)  # 2**30 fits
    assert y.tolist() == [2**30] * 4


def test_the_suites_interpreter_skips_the_overflow_check(interpret):
    x = torch.full((4,), 2**20, dtype=torch.int32)
    _times()[(1,)](x, y := torch.empty_like(x), 2**12)
    assert y.tolist() == [0] * 4  # int32 wraps, as on a GPU


def test_fused_cell_through_the_kernels_takes_the_eager_step_in_float64(interpret, monkeypatch):
    """DEPTHWISE_TRITON in the captured form: every depthwise conv of the DARTS cells in the kernels (the
    first of a chain per source with k filters per channel, the default spread form, written straight into
    the units' channel order), the ReLU before each
    second depthwise conv fused into it. One DARTS step (an architecture step, then a weight step) in
    float64 on a normal and a reduction cell: the loss, alpha and every weight after it equal the eager
    cells' to 1e-9. (Triton's interpreter takes about 0.1 s a launch here, so one step of one cell; the
    repeated-input channel map of the unspread form is in the geometries above.)"""
    import harness.nn.fused as fused

    monkeypatch.setattr(fused, "DEPTHWISE_TRITON", True)
    ran, fused_relu, remapped = [], [], []
    real = dwconv.depthwise_conv

    def counted(x, w, stride, padding, dilation, k=1, relu=False, dest=None):
        ran.append(k)
        fused_relu.append(relu)
        remapped.append(dest is not None)
        return real(x, w, stride, padding, dilation, k, relu, dest)

    monkeypatch.setattr(dwconv, "depthwise_conv", counted)
    captured_step_matches_eager()
    assert ran and any(fused_relu) and max(ran) > 1  # the kernels ran, with a fused ReLU and k > 1
    assert any(remapped)  # the spread conv wrote its outputs in the units' order itself


def test_partial_channel_cells_through_the_kernels_take_the_eager_step_in_float64(interpret, monkeypatch):
    """The depthwise kernels are on by default in captured steps since 2026-12-05 (DEPTHWISE_TRITON), and the
    partial-channel cells (PC-DARTS, DrNAS) run fused there too: their ops see C/k channels (here 2 of 4) and the
    bypass is shuffled back in. One PC-DARTS step (no warm-up, so the architecture step runs too) in float64: the
    captured form with the kernels equals the eager cells, as DARTS's does above."""
    import harness.nn.fused as fused

    monkeypatch.setattr(fused, "DEPTHWISE_TRITON", True)
    ran = []
    real = dwconv.depthwise_conv

    def counted(*args, **kwargs):
        ran.append(args[0].shape[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(dwconv, "depthwise_conv", counted)
    captured_step_matches_eager(method="pc-darts", channels=4,
                                sets=[("cell", "k", "2"), ("optimizer", "warmup_epochs", "0")])
    assert ran  # the kernels ran on the partial channels


def test_uncaptured_steps_keep_torchs_kernels(interpret, monkeypatch):
    import harness.nn.fused as fused

    monkeypatch.setattr(fused, "DEPTHWISE_TRITON", True)
    monkeypatch.setattr(dwconv, "depthwise_conv", lambda *a: pytest.fail("the Triton form ran uncaptured"))
    assert torch.isfinite(uncaptured_fast_step())


def test_every_kernel_form_compiles_for_a_gpu_without_one(tmp_path):
    """benchmarks/dwconv_compile.py: the kernels' forms that a DARTS step launches, compiled for sm_90 by
    Triton's own compiler and ptxas (the interpreter above checks what they compute, not that they compile)."""
    rec = compiled_forms(tmp_path, "--batch", "1", "--limit", "3")
    assert [r["kernel"] for r in rec["compiled"]] == ["fwd", "dx", "dw"]
    assert all(r["registers"] and r["spill_store_bytes"] == 0 for r in rec["compiled"]), rec["compiled"]
    assert rec["forms"] >= 3 and rec["geometries"] >= 1
    # the machine code's hot part (nvdisasm): a thread's multiply-adds there are its share of the program's tile,
    # every tap of it (the forward's taps unrolled, the gradients' in their loop), worked out from the tile here
    for r in rec["compiled"]:
        k, threads = r["constexprs"], 32 * r["num_warps"]
        taps = int(k["KH"]) * int(k["KW"])
        share = (int(k["TAPS"]) * int(k["BLOCK"]) if r["kernel"] == "dw" else taps * int(k["CB"]) * int(k["PB"]))
        sass = r["sass"]
        assert sass["scope"] == ("kernel" if r["kernel"] == "fwd" else "loop"), r
        assert sass["float_ops"] == share // threads, r
        assert sass["loads"] >= 1 and sass["per_float_op"] == round(sass["instructions"] / sass["float_ops"], 2)
