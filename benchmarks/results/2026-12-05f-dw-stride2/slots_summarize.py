"""The slots' kernel forms before and after, per Triton and kernel: a thread's instructions per float op in the hot
loop, launch-weighted over a forward's forms, at stride 1 and stride 2. Run after run-slots.sh:

    python slots_summarize.py > slots_summary.md
"""
import json

print("| Triton | kernel | stride | forms (launches) | instructions a float op, before | after | registers after | spill bytes after |")
print("|---|---|---|---|---|---|---|---|")
for v in ("triton36", "triton38"):
    b, a = (json.load(open(f"slots-{w}-{v}.json")) for w in ("before", "after"))
    for kernel, stride in ((k, s) for k in ("fwd", "dx", "dw") for s in ("1", "2")):
        def rows(rec):
            return [r for r in rec["compiled"] if r["kernel"] == kernel and r["constexprs"]["SH"] == stride]

        def weighted(rs):
            n = sum(r["launches_per_forward"] for r in rs)
            return n, sum(r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rs) / n

        n, before = weighted(rows(b))
        regs = sorted(r["registers"] for r in rows(a))
        print(f"| {a['triton']} | {kernel} | {stride} | {len(rows(a))} ({n}) | {before:.1f} | {weighted(rows(a))[1]:.1f} | "
              f"{regs[0]}-{regs[-1]} | {sum(r['spill_store_bytes'] for r in rows(a))} |")
