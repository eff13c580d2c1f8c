"""Where the copies (aten clone) of one ROME v2 step through the conv slots come from, by call site (or the
autograd node whose backward made them), at toy size (darts, C=4, 3 cells, batch 4, K=2) in Triton's interpreter:

    python benchmarks/results/2026-12-05l-rome-copies/count_copies.py rome-v2 2 clone > count_copies.log

Counts of operators (a CPU run, the interpreter's own copy_ calls included), not GPU kernels or times."""
import os, sys, collections, traceback
os.environ["TRITON_INTERPRET"] = "1"
ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]; sys.path.insert(0, str(ROOT))
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from harness.nn import groups
from harness.nn.cells import set_fast
from tests.searchkit import method_parts, random_batches
method = sys.argv[1]; k = sys.argv[2] if len(sys.argv) > 2 else "2"
sets = [("cell", "slots", "true")] + ([("optimizer", "samples", k), ("optimizer", "group_ops", "all")] if method.startswith("rome") else [])
net, sampler, cell, opt = method_parts(method, "darts", channels=4, layers=3, sets=sets)
set_fast(net, True)
opt.set_progress(0, 50); sampler.set_progress(0, 50); net.train()
data = random_batches(2, size=4, resolution=16)
with groups.as_captured():
    opt.step(net, *data[0])
counts = collections.Counter(); sites = collections.Counter()
class M(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        counts[name] += 1
        if name in sys.argv[3:]:
            st = [f for f in traceback.extract_stack() if "/harness/" in f.filename or "/plugins/" in f.filename]
            node = torch._C._current_autograd_node(); key = (f"{st[-1].filename.split('/work/main/')[1]}:{st[-1].lineno} {st[-1].line}" if st else "") + (f" [backward of {node.name()}]" if node is not None else "")
            sites[(name, key)] += 1
        return func(*args, **(kwargs or {}))
with groups.as_captured(), M():
    opt.step(net, *data[1])
print(sum(counts.values()), counts.most_common(25))
for (n, k_), v in sites.most_common(30): print(v, n, k_)
