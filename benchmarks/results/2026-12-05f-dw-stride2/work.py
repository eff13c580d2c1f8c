"""The weight gradient's multiply-adds in the DARTS step (darts space, C=16, 8 cells, batch 64; one forward's
depthwise calls as captured, benchmarks/dwconv_bench.py's collect), stride 2 against all, and the issue-time
estimate of the whole weight gradient from summary.md's instructions per float op. Run from this folder:

    python work.py > work.log
"""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(root), str(root / "benchmarks")]
import torch  # noqa: E402

import dwconv_bench  # noqa: E402
import search_step  # noqa: E402

ap = search_step.argparse.ArgumentParser()
search_step.step_arguments(ap, space="darts")
args = ap.parse_args(["--method", "darts", "--space", "darts", "--batch", "64"])
args.sets = []
registry, spec, space, layers, shape = search_step.resolve_step(args)
sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, layers, shape, "cpu")
search_step.ready(sampler, net, opt, True)
net.train()
x = torch.randn(args.batch, 3, args.resolution, args.resolution)
work = {1: 0, 2: 0}
for (xs, ws, stride, padding, dilation, k, relu, dest, *_), n in dwconv_bench.collect(net, x).items():
    o, _, kh, kw = ws
    ho = (xs[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (xs[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    work[stride[0]] += n * xs[0] * o * ho * wo * kh * kw
total = sum(work.values())
print(f"weight-gradient multiply-adds a step: {total / 1e9:.3f} G, stride 2: {work[2] / 1e9:.3f} G "
      f"({100 * work[2] / total:.1f}%)")
for v in ("triton36", "triton38"):
    for tile in ("taps", "pixels"):
        rows = [r for r in json.load(open(f"darts-{tile}-{v}.json"))["compiled"] if r["kernel"] == "dw"]
        per = {s: [r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rows
                   if r["constexprs"]["SH"] == str(s)] for s in (1, 2)}
        n = {s: sum(r["launches_per_forward"] for r in rows if r["constexprs"]["SH"] == str(s)) for s in (1, 2)}
        issue = sum(work[s] * sum(per[s]) / n[s] for s in (1, 2))
        print(f"{v} ({tile}, ...): instructions a float op by work {issue / total:.2f}")
