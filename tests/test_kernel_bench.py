"""benchmarks/dwconv_bench.py's and bn_bench.py's timing of one kernel form: what a CUDA graph capture of a
form's forward and gradients needs from the code around it, checked on a CPU.

On the H200 on 2026-12-05 that capture failed ("operation would make the legacy stream depend on a capturing
blocking stream") right after autograd warned that an AccumulateGrad node made before the iteration was kept
alive: the error check's output, still referenced while the forms were timed, held the inputs' AccumulateGrad
nodes, made on the default stream (benchmarks/results/2026-12-05-gpu/all.log)."""

import collections
import gc
import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("dwconv_bench", ROOT / "benchmarks" / "dwconv_bench.py")
dwconv_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dwconv_bench)


def _graphs_alive() -> list:
    gc.collect()
    return [o for o in gc.get_objects() if issubclass(type(o), torch.Tensor) and o.grad_fn is not None]


def test_no_autograd_graph_outlives_the_error_check_and_the_timed_leaves_are_fresh(monkeypatch):
    h = torch.randn(2, 4, 6, 6, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    g = torch.randn(2, 4, 6, 6)
    h64, w64 = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    y64 = torch.nn.functional.conv2d(h64, w64, None, 1, 1, 1, 4)
    ref = tuple(t.detach() for t in (y64, *torch.autograd.grad(y64, (h64, w64), g.double())))
    del y64
    seen = []
    before = {id(o) for o in _graphs_alive()}  # (other tests' leftovers in this process)

    def timed(fn, reps, cuda):
        seen.append([o for o in _graphs_alive() if id(o) not in before])  # what a capture would find alive
        fn()
        return 1.0

    def form(a, b):
        seen_leaves.append((a, b))
        return torch.nn.functional.conv2d(a, b, None, 1, 1, 1, 4)

    seen_leaves = []
    monkeypatch.setattr(dwconv_bench, "timed", timed)
    row, totals = {}, collections.Counter()
    dwconv_bench.time_forms({"torch": form}, (h, w), (h, w), g, ref, 3, False, row, totals, 2)
    assert seen == [[], []], "an autograd graph of the error check was alive while a form was timed"
    # float32 against float64 of the same convolution: errors at float32's rounding, not zero, not large
    assert all(0 < e < 1e-5 for e in row["torch_rel_err"]), row
    assert row["torch_fwd_ms"] == row["torch_fwd_bwd_ms"] == 1.0 and totals["torch_fwd_ms"] == 2.0
    checked, *timed_leaves = seen_leaves
    assert checked[0] is h and checked[1] is w
    for a, b in timed_leaves:  # detached leaves sharing the storage: no AccumulateGrad node made before
        assert a is not h and b is not w and a.is_leaf and b.is_leaf
        assert a.data_ptr() == h.data_ptr() and b.data_ptr() == w.data_ptr()
