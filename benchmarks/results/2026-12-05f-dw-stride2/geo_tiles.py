"""The slots' per-unit-geometry forms (GEO) of one kernel compiled for sm_90 (no GPU) with each tile setting tried
before it was fixed: the input gradient's (elements, elements a thread) (harness.nn.dwconv._DX_GEO, now (1024, 4))
or the forward's elements a thread (_FWD_GEO, now 4); launch-weighted instructions a float op at stride 1 and 2,
registers, spills, and each form's (CB, PB, warps). ``fwd-fixed``: the DARTS step's fixed-geometry forward with
each _FWD_FIXED (not kept), per kernel size. Run from this folder with each Triton:

    PY=/tmp/v212/bin/python; V=triton36   # then PY=../../../.venv/bin/python; V=triton38
    for k in dx fwd fwd-fixed; do $PY geo_tiles.py $k > $k-tiles-$V.log; done
"""
import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import dwconv_compile  # noqa: E402

from harness.nn import dwconv  # noqa: E402

what = sys.argv[1]
setting, tried = {"dx": ("_DX_GEO", [(512, 1), (1024, 2), (1024, 4), (2048, 4), (1024, 8)]),
                  "fwd": ("_FWD_GEO", [2, 4, 8]), "fwd-fixed": ("_FWD_FIXED", [None, 4, 8])}[what]
kernel, fixed = what.split("-")[0], what.endswith("fixed")
for cfg in tried:
    setattr(dwconv, setting, cfg)
    with contextlib.redirect_stdout(io.StringIO()):
        rec = dwconv_compile.main(["--method", "darts", "--batch", "64"] if fixed else
                                  ["--method", "gdas", "--slots", "--batch", "64"])
    rows = [r for r in rec["compiled"] if r["kernel"] == kernel]
    key = "KH" if fixed else "SH"
    for st in ("3", "5") if fixed else ("1", "2"):
        rs = [r for r in rows if r["constexprs"][key] == st]
        n = sum(r["launches_per_forward"] for r in rs)
        w = sum(r["sass"]["per_float_op"] * r["launches_per_forward"] for r in rs) / n
        print(cfg, "k" if fixed else "stride", st, f"{w:.2f}", "regs", sorted({r["registers"] for r in rs}), "spill",
              sum(r["spill_store_bytes"] for r in rs), "forms",
              [(r["constexprs"]["CB"], r["constexprs"]["PB"], r["num_warps"]) for r in rs], flush=True)
