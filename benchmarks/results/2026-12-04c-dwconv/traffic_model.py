"""Kernels and bytes of the captured DARTS step (batch 64, C=16, 8 cells, on the meta device) with the
depthwise convs in torch's kernels (the default) and as DEPTHWISE_TRITON runs them, counted the way
benchmarks/step_traffic.py counts (a kernel per launching operator; bytes = its tensor inputs + outputs;
bytes_by_operator.py's counter and step).

The Triton kernels cannot run on the meta device, so their launches are modelled from their design
(harness/nn/dwconv.py): forward one kernel reading x and w and writing y; input gradient one kernel reading
the output gradient, w (and x when a ReLU is fused) and writing dx; weight gradient one kernel reading the
output gradient and x and writing per-slice partial sums, then torch's sum of those (counted as run).
A model of what the kernels are written to move once, not a measurement: their tap re-reads are meant to
hit the caches. Run from the repository root:

    python benchmarks/results/2026-12-04c-dwconv/traffic_model.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bytes_by_operator beside it

import torch  # noqa: E402
from bytes_by_operator import Count, count_captured_step  # noqa: E402

from harness.nn import dwconv, fused, groups  # noqa: E402

COUNT = None


def nb(*ts):
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


class ModelledConv(torch.autograd.Function):
    """The Triton form's launches, counted; the values are torch's (meta: shapes only)."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, dilation, k, relu, dest):
        with torch.utils._python_dispatch._disable_current_modes():
            c, o = x.shape[1], w.shape[0]
            xs = x.index_select(1, torch.tensor([(j // k) % c for j in range(o)], device=x.device))
            y = torch.nn.functional.conv2d(xs, w, None, stride, padding, dilation, o)
        COUNT.add("triton_dw_forward", nb(x, w, y, dest))
        ctx.save_for_backward(x, w)
        ctx.relu, ctx.dest = relu, dest
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0] and groups.engine_needs(x):
            dx = torch.empty_like(x)
            COUNT.add("triton_dw_grad_input", nb(g, w, dx, x if ctx.relu else None, ctx.dest))
        if ctx.needs_input_grad[1] and groups.engine_needs(w):
            splits = max(1, min(x.shape[0], -(-1024 // w.shape[0])))
            part = torch.empty(w.shape[0], splits, w.shape[2] * w.shape[3], device=w.device)
            COUNT.add("triton_dw_grad_weight", nb(g, x, part))
            dw = part.sum(1).view(w.shape)  # counted by the mode as torch's sum
        return dx, dw, None, None, None, None, None, None


def count(triton_dw: bool) -> Count:
    global COUNT
    old = fused.DEPTHWISE_TRITON, dwconv.why_not, dwconv.depthwise_conv
    if triton_dw:
        fused.DEPTHWISE_TRITON, dwconv.why_not = True, (lambda t: None)
        dwconv.depthwise_conv = lambda x, w, s, p, d, k=1, relu=False, dest=None: ModelledConv.apply(
            x, w, s, p, d, k, relu, dest)
    try:
        COUNT = Count()
        return count_captured_step(COUNT)
    finally:
        fused.DEPTHWISE_TRITON, dwconv.why_not, dwconv.depthwise_conv = old


if __name__ == "__main__":
    base, tri = count(False), count(True)
    names = sorted(set(base.bytes) | set(tri.bytes), key=lambda n: -(base.bytes[n] + tri.bytes[n]))
    print("darts on darts, captured form, batch 64, C=16, 8 cells (meta device)")
    print("| operator | kernels, torch dw | kernels, Triton dw | GB, torch dw | GB, Triton dw |\n|---|---|---|---|---|")
    for n in names:
        if base.kernels[n] != tri.kernels[n] or abs(base.bytes[n] - tri.bytes[n]) > 1e6:
            print(f"| {n} | {base.kernels[n]} | {tri.kernels[n]} | {base.bytes[n] / 1e9:.2f} | {tri.bytes[n] / 1e9:.2f} |")
    print(f"| **total** | {sum(base.kernels.values())} | {sum(tri.kernels.values())} | "
          f"{sum(base.bytes.values()) / 1e9:.2f} | {sum(tri.bytes.values()) / 1e9:.2f} |")
