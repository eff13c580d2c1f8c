"""How much could batching save in a single-path method's step? Counts op-module runs, no timing.

A single-path cell (GDAS, ROME) runs one op on each active edge. ROME's step runs K sampled architectures
for the arch update and K more for the weight update, one after another. Running them together (the K
samples' inputs stacked, each sample's BN statistics kept apart as channel groups) can merge only the op
runs that are the same module on the same input: the same (edge, op) in several samples. Grouping also
across the edges that leave one node, as the fused mixed cell does, merges the same op type on the same
source. This script draws the samplers' own architectures and counts, per cell kind and pass:

* ``sequential``: op runs as the step does them now (K samples x active edges);
* ``by (edge, op)``: distinct (edge, op) pairs among the K samples;
* ``by (source, op)``: distinct (source node, op type) pairs among them.

``sequential / grouped`` bounds from above how many fewer op-module launches a batched cell could make
(the stem, the cell preprocessing and the classifier would run once instead of K times on top). The
architecture distribution is set by ``--concentration c``: alpha = c on one op per edge (and beta = c
on two inputs per node), 0 elsewhere, the ops and inputs drawn once at random; c = 0 is the search's
start (uniform), larger c is later in a search.

    python benchmarks/single_path_groups.py --method rome-v2 --space darts
    python benchmarks/single_path_groups.py --method gdas --space darts --concentration 0 2 4
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help="a method whose sampler is single-path (gdas, rome-v1, ...)")
    ap.add_argument("--space", default="darts")
    ap.add_argument("--samples", type=int, help="K; default: the method's own (ROME 7, otherwise 1)")
    ap.add_argument("--concentration", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    ap.add_argument("--passes", type=int, default=100, help="sampled passes averaged per concentration")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from harness.config import parse_sets, resolve
    from harness.errors import HarnessError
    from harness.plugins import load_registry

    torch.manual_seed(0)  # the samplers' init and Gumbel draws: the same figures on every run
    registry = load_registry()
    method = registry.method(args.method)
    spec = resolve(registry, method, args.space, "cifar10", 0, "paper", {}, parse_sets([]))
    space = registry.space(args.space, spec.budget.search.op_set)  # the recipe's op set
    sampler = registry.component("sampler", spec.components["sampler"]).factory(spec.hparams["sampler"],
                                                                               space=space)
    if not getattr(sampler, "single_path", False):
        raise HarnessError(f"method {args.method!r} does not sample a single path (sampler "
                           f"{spec.components['sampler']!r}); this count is for single-path methods")
    k = args.samples or getattr(spec.hparams["optimizer"], "samples", 1)
    sampler.set_progress(0, 50)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for c in args.concentration:
        with torch.no_grad():
            for alpha in sampler.alphas.values():
                target = torch.randint(0, alpha.shape[1], (alpha.shape[0],), generator=gen)
                alpha.zero_().scatter_(1, target[:, None], c)
            for beta in getattr(sampler, "betas", {}).values():
                beta.zero_()
                if hasattr(sampler, "subsets"):  # rome-v1: one beta per input pair; favour one pair per node
                    offset = 0
                    for subsets in sampler.subsets:
                        beta[offset + int(torch.randint(0, len(subsets), (1,), generator=gen))] = c
                        offset += len(subsets)
                else:  # rome-v2: one beta per edge; favour two per node
                    for inc in sampler.incoming:
                        pick = torch.randperm(len(inc), generator=gen)[:2].tolist()
                        beta[[inc[i] for i in pick]] = c
        p_max = statistics.mean(float(torch.softmax(a.detach(), -1).max(-1).values.mean()) for a in sampler.alphas.values())
        seq, by_edge, by_source = [], [], []
        for _ in range(args.passes):
            draws = [sampler() for _ in range(k)]
            for kind in space.cell_kinds:
                runs = [(e, d.host_index[kind][e]) for d in draws for e in range(len(space.edges))
                        if d.host_active is None or d.host_active[kind][e]]
                seq.append(len(runs))
                by_edge.append(len(set(runs)))
                by_source.append(len({(space.edges[e][0], op) for e, op in runs}))
        s, e, src = (statistics.mean(v) for v in (seq, by_edge, by_source))
        rows.append({"concentration": c, "p_max_op": round(p_max, 3), "sequential": round(s, 2),
                     "by_edge_op": round(e, 2), "by_source_op": round(src, 2),
                     "ratio_edge_op": round(s / e, 2), "ratio_source_op": round(s / src, 2)})
        print(f"{args.method} on {args.space}, K={k}, concentration {c:g} (max op probability {p_max:.2f}): "
              f"per cell kind and pass {s:.1f} op runs; {e:.1f} distinct (edge, op) ({s / e:.2f}x fewer); "
              f"{src:.1f} distinct (source, op) ({s / src:.2f}x fewer)")
    out = {"command": "python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])]), "method": args.method,
           "space": args.space, "samples": k, "ops_per_edge": space.n_ops, "passes": args.passes,
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "rows": rows}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
