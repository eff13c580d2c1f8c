"""The weight gradient's forms (kernel "dw") of each run.sh log: a thread's instructions per float op in the hot
loop, weighted by launches in a forward, over the stride-2 forms and over all; their registers and spills. Run
from this folder after run.sh:

    python summarize.py > summary.md
"""
import json

print("| Triton | step | accumulator | stride-2 forms (launches) | instructions a float op, stride 2 | largest "
      "| all dw forms | registers, stride 2 | spill bytes |")
print("|---|---|---|---|---|---|---|---|---|")
for v in ("triton36", "triton38"):
    for what in ("darts", "slots"):
        for tile in ("taps", "pixels"):
            rec = json.load(open(f"{what}-{tile}-{v}.json"))
            rows = [r for r in rec["compiled"] if r["kernel"] == "dw"]
            s2 = [r for r in rows if r["constexprs"]["SH"] == "2"]

            def weighted(rs):
                n = sum(r["launches_per_forward"] for r in rs)
                return sum(r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rs) / n

            regs = sorted({r["registers"] for r in s2})
            print(f"| {rec['triton']} | {what} | ({tile}, {'pixels' if tile == 'taps' else 'taps'}) | "
                  f"{len(s2)} ({sum(r['launches_per_forward'] for r in s2)}) | {weighted(s2):.1f} | "
                  f"{max(r['sass']['per_float_op'] for r in s2):.1f} | {weighted(rows):.1f} | "
                  f"{regs[0]}-{regs[-1]} | {sum(r['spill_store_bytes'] for r in rows)} |")
