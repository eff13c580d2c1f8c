"""Kernels and bytes of GDAS's and ROME v2's captured search steps (darts space, batch 64, C=16, 8 cells, on
the meta device) in three forms: the all-op pass (GDAS's default captured step, ROME's with
optimizer.group_ops=all: every op of every edge, weighted by the hard one-hot, ROME's K=7 samples as one
grouped pass), the same with DEPTHWISE_TRITON, and the conv slots (cell.slots=true, harness/nn/slots.py),
counted as benchmarks/step_traffic.py counts (a kernel per launching operator; bytes = its tensor inputs + outputs;
the counter of ../2026-12-04c-dwconv/bytes_by_operator.py).

The Triton kernels cannot run on the meta device, so their launches are modelled from their design
(../2026-12-04c-dwconv/traffic_model.py's ModelledConv, here also with the per-unit geometry table): one
forward kernel reading x, w (and the table) and writing y; input gradient reading the output gradient and w
(x with a fused ReLU) and writing dx; weight gradient reading the output gradient and x and writing partial
sums, then torch's sum of those (counted as run). Counts, not measurements. Run from the repository root:

    python benchmarks/results/2026-12-04d-slots/traffic_model.py            # GDAS
    python benchmarks/results/2026-12-04d-slots/traffic_model.py rome-v2    # ROME v2, K=7, group_ops=all
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "2026-12-04c-dwconv"))  # bytes_by_operator, traffic_model
sys.path.insert(0, str(HERE.parents[1]))  # benchmarks/: search_step

import torch  # noqa: E402
import traffic_model as dw_model  # noqa: E402
from bytes_by_operator import Count, count_captured_step  # noqa: E402

from harness.nn import dwconv, fused, groups  # noqa: E402


class ModelledGeoConv(torch.autograd.Function):
    """A per-unit-geometry launch (harness.nn.slots): shapes from the 5x5 grid at padding 2 (every unit is
    "same"-padded), bytes as the kernels move them once."""

    @staticmethod
    def forward(ctx, x, w, stride, relu, table, samples):
        with torch.utils._python_dispatch._disable_current_modes():
            c, o = x.shape[1], w.shape[0]
            # K sample blocks in, one block of images out (each sample's units reading its block)
            xs = x[:x.shape[0] // samples].index_select(1, torch.tensor([j % c for j in range(o)], device=x.device))
            y = torch.nn.functional.conv2d(xs, w, None, stride, (2, 2), (1, 1), o)
        dw_model.COUNT.add("triton_dw_forward", dw_model.nb(x, w, y, table))
        ctx.save_for_backward(x, w)
        ctx.relu, ctx.table = relu, table
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dx = dww = None
        nb = dw_model.nb
        if ctx.needs_input_grad[0] and groups.engine_needs(x):
            dx = torch.empty_like(x)
            dw_model.COUNT.add("triton_dw_grad_input", nb(g, w, dx, x if ctx.relu else None, ctx.table))
        if ctx.needs_input_grad[1] and groups.engine_needs(w):
            splits = max(1, min(x.shape[0], -(-1024 // w.shape[0])))
            part = torch.empty(w.shape[0], splits, w.shape[2] * w.shape[3], device=w.device)
            dw_model.COUNT.add("triton_dw_grad_weight", nb(g, x, part, ctx.table))
            dww = part.sum(1).view(w.shape)
        return dx, dww, None, None, None, None


def modelled(x, w, s, p, d, k=1, relu=False, dest=None, geo=None):
    if geo is not None:
        return ModelledGeoConv.apply(x, w, s, relu, geo[0], geo[2] if len(geo) > 2 else 1)
    return dw_model.ModelledConv.apply(x, w, s, p, d, k, relu, dest)


def count(form: str, method: str = "gdas") -> Count:
    """One captured step of ``method`` (after one uncounted step: the optimizers' lazy state) in ``form``:
    "all-op", "all-op triton-dw" or "slots"."""
    sets = ["cell.slots=true"] if form == "slots" else []
    if method.startswith("rome"):
        sets.append("optimizer.group_ops=all")  # the capturable grouped pass (on the meta device: all K at once)
    old = fused.DEPTHWISE_TRITON, dwconv.why_not, dwconv.depthwise_conv
    fused.DEPTHWISE_TRITON = form == "all-op triton-dw"
    dwconv.why_not, dwconv.depthwise_conv = (lambda t: None), modelled
    try:
        dw_model.COUNT = counter = Count()
        return count_captured_step(counter, method, sets)
    finally:
        fused.DEPTHWISE_TRITON, dwconv.why_not, dwconv.depthwise_conv = old


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else "gdas"
    forms = ("all-op", "all-op triton-dw", "slots")
    counts = {f: count(f, method) for f in forms}
    names = sorted(set().union(*(c.bytes for c in counts.values())),
                   key=lambda n: -max(c.bytes[n] for c in counts.values()))
    print(f"{method} on darts, captured form, batch 64, C=16, 8 cells (meta device); kernels / GB per operator")
    print("| operator | " + " | ".join(f"kernels, {f}" for f in forms) + " | " + " | ".join(f"GB, {f}" for f in forms)
          + " |")
    print("|---" * (1 + 2 * len(forms)) + "|")
    for n in names[:30]:
        print(f"| {n} | " + " | ".join(str(counts[f].kernels[n]) for f in forms) + " | "
              + " | ".join(f"{counts[f].bytes[n] / 1e9:.2f}" for f in forms) + " |")
    print("| **total** | " + " | ".join(str(sum(counts[f].kernels.values())) for f in forms) + " | "
          + " | ".join(f"{sum(counts[f].bytes.values()) / 1e9:.2f}" for f in forms) + " |")
