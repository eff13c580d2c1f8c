"""benchmarks/triton_cache.py: the Triton kernels' forms compiled through Triton's JIT as a GPU compiles them
(its argument specialisation and ``do_not_specialize``), with a stand-in driver that reports sm_90, and the
cache it leaves, installed elsewhere, giving every form back without compiling. Triton's interpreter (the
other kernel tests) and ``triton.compile`` on a hand-made signature (dwconv_compile.py) skip the JIT's path:
a constexpr listed in ``do_not_specialize`` passed both and failed every first launch on a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(ROOT / "benchmarks" / "triton_cache.py")]


def _run(*args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the JIT, not the interpreter
    return subprocess.run([*SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _triton():
    return pytest.importorskip("triton", reason="Triton comes with torch's CUDA builds")


def test_each_part_compiles_through_the_jit_and_an_installed_cache_gives_every_form_back(tmp_path):
    triton = _triton()
    built, installed = tmp_path / "built", tmp_path / "installed"
    # one geometry of the DARTS step's depthwise convs, one BatchNorm shape, one conv-slot geometry of GDAS's, and
    # one captured nb201 step with its BatchNorm in the kernels
    which = "darts dw,darts bn,gdas slots,nb201 step"
    done = _run("--tiny", "--limit", "1", "--parts", which, "--out", str(built))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["triton"] == triton.__version__ and manifest["arch"] == 90
    parts = {p["part"]: p for p in manifest["parts"]}
    # each geometry: a forward, an input-gradient and a weight-gradient form; each BatchNorm shape: its statistics,
    # combine, normalise, gradient-sums, gradient-combine and input-gradient forms (6), then at 1 image a program
    # instead of 2 (a batch of 2) again the three that take the images a program as a constexpr (IMG: statistics,
    # combine, gradient sums; the combine kernels' block tile IB is 16 for 1 block and for 2)
    assert parts["darts dw"]["compiled"] == 3 and parts["darts bn"]["compiled"] == 9, parts
    assert parts["gdas slots"]["compiled"] == 3 and not any(p["cache_hits"] for p in parts.values()), parts
    stepped = parts["nb201 step"]["compiled"]  # the step's BatchNorm shapes
    assert stepped > 0 and parts["nb201 step"]["launched"] == "one captured step"
    kernels = sorted(p.name for p in built.glob("*/*.cubin"))
    assert len(kernels) == manifest["entries"] == 15 + stepped and not list(built.glob("*/*.source"))

    line = _run("--install", str(built), str(installed))
    assert line.returncode == 0 and f"{15 + stepped} kernels from {built}" in line.stdout, line.stdout + line.stderr
    for grp in installed.glob("*/__grp__*.json"):  # Triton's file lists point into the installed copy
        assert all(p.startswith(str(installed)) for p in json.loads(grp.read_text())["child_paths"].values())
    # a part of each kind again, on the installed copy: every form found there, none compiled
    again = _run("--tiny", "--limit", "1", "--parts", "darts bn,nb201 step", "--out", str(installed), "--keep")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    parts = {p["part"]: p for p in json.loads((installed / "manifest.json").read_text())["parts"]}
    assert [(p["compiled"], p["cache_hits"]) for p in parts.values()] == [(0, 9), (0, stepped)], parts


def test_a_cache_from_another_triton_is_not_installed(tmp_path):
    _triton()
    built = tmp_path / "built"
    built.mkdir()
    (built / "manifest.json").write_text(json.dumps({"triton": "0.0.1", "arch": 90}))
    done = _run("--install", str(built), str(tmp_path / "installed"))
    assert done.returncode == 0 and "built with Triton 0.0.1, this machine has" in done.stdout, done.stdout
    assert not (tmp_path / "installed").exists()
    missing = _run("--install", str(tmp_path / "nothing"), str(tmp_path / "installed"))
    assert "not installed" in missing.stdout and "manifest.json unreadable" in missing.stdout


def test_an_unknown_part_is_named_with_the_parts():
    done = _run("--parts", "darts dw,dart bn")
    assert done.returncode == 2 and "unknown part(s) ['dart bn']" in done.stderr and "'nb201 bn'" in done.stderr


def test_only_run_time_sizes_are_left_unspecialised():
    from harness.nn import bntriton, dwconv

    fwd, dx, dw = dwconv.KERNELS
    # padding and dilation: constexprs of the forward and input gradient, run-time values of the weight gradient
    assert not {"PH", "PW", "DH", "DW"} & set(dwconv.runtime_sizes(fwd, dwconv._SIZES) + dwconv.runtime_sizes(dx, dwconv._SIZES))
    assert {"PH", "PW", "DH", "DW", "C", "H", "W"} <= set(dwconv.runtime_sizes(dw, dwconv._SIZES))
    for fn in bntriton.KERNELS:
        assert all("constexpr" not in str(fn.__annotations__.get(a, "")) for a in dwconv.runtime_sizes(fn, bntriton._SIZES))
