"""harness.nn.bntriton: BatchNorm's training pass in Triton kernels (issue 12), run by Triton's interpreter on
this CPU in float64 against ``F.batch_norm`` (each sample block its own call, in sample order, as
harness.nn.groups's successive-pass meaning), and a DARTS step through them against the eager cells."""


import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed (it comes with torch's CUDA wheels)")

from harness.nn import bntriton, groups  # noqa: E402
from tests.searchkit import captured_step_matches_eager, compiled_forms, uncaptured_fast_step  # noqa: E402


def _reference(x, rm, rv, w, b, momentum, eps, samples):
    """torch's BatchNorm, one call per sample block in order (the running buffers updated by each)."""
    return torch.cat([F.batch_norm(block, rm, rv, w, b, True, momentum, eps)
                      for block in x.split(x.shape[0] // samples)])


# (N, C, H, W), samples, affine, running statistics: a plane in one tile, planes smaller than a tile (several
# channels a program), a plane larger than a tile (the looped passes: 40 x 30 = 1,200 > 1,024), sample blocks
CASES = [((4, 3, 5, 7), 1, False, True),
         ((6, 20, 2, 3), 3, True, True),
         ((2, 2, 40, 30), 1, True, False),
         ((6, 5, 4, 4), 2, False, True)]


@pytest.mark.parametrize("images", [1, 2, 8])
@pytest.mark.parametrize("shape,samples,affine,track", CASES)
def test_kernels_compute_torchs_batch_norm_its_statistics_and_gradients(shape, samples, affine, track, images,
                                                                         interpret, overflow_checked, monkeypatch):
    """... with each statistics program reading 1, 2 or 8 images (IMAGES_PER_PROGRAM: 2 leaves a last block of
    one image where a sample has 3, and 8 takes a sample's images in one block)."""
    monkeypatch.setattr(bntriton, "IMAGES_PER_PROGRAM", images)
    torch.manual_seed(0)
    dt = torch.float64
    x = (torch.randn(shape, dtype=dt) * 3 + 2).requires_grad_()  # a mean far from 0: cancellation would show
    c = shape[1]
    w = (torch.rand(c, dtype=dt) + 0.5).requires_grad_() if affine else None
    b = torch.randn(c, dtype=dt).requires_grad_() if affine else None
    rm0, rv0 = torch.randn(c, dtype=dt), torch.rand(c, dtype=dt) + 0.5
    upstream = torch.randn(shape, dtype=dt)

    def run(fn):
        rm, rv = (rm0.clone(), rv0.clone()) if track else (None, None)
        y = fn(x, rm, rv, w, b, 0.1, 1e-5, samples)
        grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], upstream)
        return y.detach(), rm, rv, grads

    ye, rme, rve, ge = run(_reference)
    yt, rmt, rvt, gt = run(bntriton.batch_norm)
    torch.testing.assert_close(yt, ye, rtol=1e-12, atol=1e-12)
    if track:
        torch.testing.assert_close(rmt, rme, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rvt, rve, rtol=1e-12, atol=1e-12)
    for a, e in zip(gt, ge):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_only_the_gradients_a_backward_uses_are_computed(interpret, monkeypatch):
    """An architecture step's backward asks for no weight gradient: the affine gradients are not computed
    there, and no kernel runs for an input gradient nobody asks for."""
    seen = []
    real = bntriton.backward
    monkeypatch.setattr(bntriton, "backward", lambda *a: seen.append(a[6:8]) or real(*a))  # (need_input, need_affine)
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    y = bntriton.batch_norm(x, None, None, w, b, 0.1, 1e-5)
    (gx,) = torch.autograd.grad((y * y.detach()).sum(), [x], retain_graph=True)
    (gw,) = torch.autograd.grad((y * y.detach()).sum(), [w])
    assert seen == [(True, False), (False, True)]
    e = F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5)
    ex, ew = torch.autograd.grad((e * e.detach()).sum(), [x, w])
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)


def test_one_value_per_channel_is_refused_as_torch_refuses_it(interpret):
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bntriton.batch_norm(torch.randn(2, 3, 1, 1, dtype=torch.float64), None, None, None, None, 0.1, 1e-5, 2)


def test_fused_cells_through_the_kernels_take_the_eager_step_in_float64(interpret, monkeypatch):
    """BATCHNORM_TRITON in the captured form: every training BatchNorm of the DARTS supernet (the fused
    cells' shared ones, the preprocessing and stem layers) in the kernels. One DARTS step (an architecture
    step, then a weight step) in float64 on a normal and a reduction cell: the loss, alpha, every weight and
    every running statistic after it equal the eager cells' to 1e-9."""
    monkeypatch.setattr(groups, "BATCHNORM_TRITON", True)
    ran = []
    real = bntriton.batch_norm
    monkeypatch.setattr(bntriton, "batch_norm", lambda x, *a: ran.append(x.shape[1]) or real(x, *a))
    captured_step_matches_eager()
    assert ran  # the kernels ran


def test_uncaptured_steps_keep_torchs_kernels(interpret, monkeypatch):
    monkeypatch.setattr(groups, "BATCHNORM_TRITON", True)
    monkeypatch.setattr(bntriton, "batch_norm", lambda *a: pytest.fail("the Triton form ran uncaptured"))
    assert torch.isfinite(uncaptured_fast_step())


def test_every_kernel_form_compiles_for_a_gpu_without_one(tmp_path):
    """benchmarks/dwconv_compile.py --bn: the forms a DARTS step launches, compiled for sm_90 by Triton's own
    compiler and ptxas (the interpreter above checks what they compute, not that they compile; the machine
    code's columns, checked in tests/test_dwconv.py, are left out: nvdisasm's 0.3 s a form was half this test)."""
    rec = compiled_forms(tmp_path, "--bn", "--batch", "2", "--no-sass")
    assert all(r["sass"] is None for r in rec["compiled"])
    assert {r["kernel"] for r in rec["compiled"]} == {"block_stats", "combine", "normalize", "grad_sums",
                                                      "grad_combine", "dx"}
    assert all(r["registers"] and r["spill_store_bytes"] == 0 for r in rec["compiled"]), rec["compiled"]


@pytest.mark.parametrize("method, slotted, sets", [
    ("rome-v2", False, [("optimizer", "samples", "2"), ("optimizer", "group_ops", "all")]),
    pytest.param("gdas", True, [], marks=pytest.mark.slow)])  # (8 s in the interpreter: -m slow)
def test_sample_groups_and_slots_through_the_kernels_follow_the_eager_step_in_float64(interpret, monkeypatch,
                                                                                        method, slotted, sets):
    """ROME v2's K=2 samples as one grouped all-op pass (each sample block of a BatchNorm call normalised by
    its own statistics, the running statistics updated in sample order: one kernel call where torch's form
    makes one per block) against the eager K-loop; and (-m slow) GDAS's conv slots (their BatchNorm rows and
    the pools' shared statistics) against the eager cell: one step in float64, losses, alphas, every weight and running
    statistic to 1e-9 (tests/test_slots.py's comparison, with BATCHNORM_TRITON on)."""
    from tests.test_slots import _run

    monkeypatch.setattr(groups, "BATCHNORM_TRITON", True)
    blocks = []
    real = bntriton.batch_norm
    monkeypatch.setattr(bntriton, "batch_norm", lambda x, *a: blocks.append(a[-1]) or real(x, *a))
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, _, _ = _run("darts", None, 1, layers=1, method=method, sets=sets)
        ls, as_, ws, _, _ = _run("darts", slotted, 1, layers=1, method=method, sets=sets)
    finally:
        torch.set_default_dtype(torch.float32)
    assert blocks and (max(blocks) == 2 if method == "rome-v2" else True)
    assert max(abs(a - b) / abs(a) for a, b in zip(le, ls)) < 1e-9
    assert max(float((b - a).abs().max() / a.abs().max()) for a, b in zip(ae, as_)) < 1e-9
    # the all-op pass updates every op's running statistics, the eager loop the sampled ops' only: there the
    # weights alone (the per-sample normalisation shows in them and in the losses)
    kept = [k for k in we if slotted or not ("running_" in k or "num_batches" in k)]
    worst = {k: float((ws[k] - we[k]).abs().max() / we[k].abs().max().clamp_min(1e-6)) for k in kept}
    assert max(worst.values()) < 1e-9, max(worst.items(), key=lambda kv: kv[1])
