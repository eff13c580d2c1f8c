"""Per method on darts (batch 4, C=4, 3 cells, 16x16; DrNAS with K=2 as its smoke preset): whether a CUDA run
captures its step (harness.graphs.why_not_graphed, as the runner asks with runtime.cuda_graph=auto) and what the
meta-device sync check of `search_step.py --sync-check` finds in the step a CUDA run takes (the captured form where
capturable, else the uncaptured fast step). Run from a checkout's root: python <this file>."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path.cwd() / "benchmarks"))
import search_step  # noqa: E402
from harness.config import parse_sets, resolve  # noqa: E402
from harness.graphs import why_not_graphed  # noqa: E402
from harness.nn import groups  # noqa: E402
from harness.plugins import load_registry  # noqa: E402
from harness.spaces import NetShape  # noqa: E402

reg = load_registry()
shape = NetShape(3, 10, 16)
print("| method | captured on CUDA | host reads in the step (meta device) |")
print("|---|---|---|")
for m in sorted(reg.methods):
    sets = ["cell.k=2", "optimizer.k_schedule=2,1"] if m == "drnas" else []
    spec = resolve(reg, reg.method(m), "darts", "cifar10", 0, "paper", {}, parse_sets(sets))
    space = reg.space("darts", spec.budget.search.op_set)
    sampler, cell, net, opt = search_step.step_parts(reg, spec, space, 4, 3, shape, torch.device("cpu"))
    why = why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt)
    with groups.as_captured() if why is None else groups.nullcontext() if hasattr(groups, "nullcontext") else \
            __import__("contextlib").nullcontext():
        syncs = search_step._meta_sync_check(*search_step.step_parts(reg, spec, space, 4, 3, shape, "meta"),
                                             shape, 4, True)
    print(f"| {m} | {'yes' if why is None else 'no: ' + why} | {syncs} |")
