"""The hot code of every kernel form of the DARTS step (darts space, C=16, 8 cells), summed over the forms
weighted by their launches in a forward: a thread's instructions per floating-point op in its arithmetic loop
(the forward: the whole kernel), before and after, for each Triton. Run from this folder after run.sh:

    python summarize.py > summary.md
"""
import json

print("| Triton | kernel | launches a forward | instructions a float op, before | after | largest after |")
print("|---|---|---|---|---|---|")
for v in ("triton36", "triton38"):
    runs = {when: json.load(open(f"{when}-darts-sm90-{v}.json")) for when in ("before", "after")}
    for kernel in ("fwd", "dx", "dw"):
        figs = {}
        for when, rec in runs.items():
            rows = [r for r in rec["compiled"] if r["kernel"] == kernel]
            n = sum(r["launches_per_forward"] for r in rows)
            figs[when] = (n, sum(r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rows) / n,
                          max(r["sass"]["per_float_op"] for r in rows))
        ver = runs["after"]["triton"]
        print(f"| {ver} | {kernel} | {figs['after'][0]} | {figs['before'][1]:.1f} | {figs['after'][1]:.1f} | "
              f"{figs['after'][2]:.1f} |")
