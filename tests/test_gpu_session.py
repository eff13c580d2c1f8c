"""benchmarks/gpu_session.sh all: every GPU figure in one call, in priority order, each measurement a JSON
line the moment it is taken. TINY=1 runs the same script on a CPU (the device is only lent sometimes, so
the script must be known to work before a session spends device time on it)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRIORITY = ["darts darts", "darts nb201", "profile darts darts", "gdas darts",
            "rome-v2 darts", "entrannas darts",
            "entrannas darts device", "e2e graph", "dwconv darts", "bn darts", "variants darts darts",
            "variants darts nb201", "variants gdas darts", "variants rome-v2 darts", "profile gdas darts",
            "profile rome-v2 darts", "pc-darts darts", "drnas darts", "sdarts-adv darts", "darts-minus darts",
            "gdas darts all-op", "rome-v2 darts all", "darts darts recompute",
            "darts-2nd darts",
            "single-darts darts", "darts-pt-fixed-alpha darts", "entrannas-dst darts", "entrannas-dst darts device",
            "rome-v1 darts", "e2e eager", "f64 rome-v2", "packing"]


def _env(out: Path) -> dict:
    env = dict(os.environ, TINY="1", OUT=str(out))  # one torch thread: tests/conftest.py's OMP_NUM_THREADS
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this venv's python3
    return env


def test_all_takes_every_item_in_priority_order(tmp_path):
    result = subprocess.run(["bash", "benchmarks/gpu_session.sh", "all"], cwd=ROOT, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r.get("item") for r in lines] == PRIORITY, lines
    assert not (tmp_path / "all.current").exists()  # the worker's "taking this item" note, gone after each item
    darts = lines[0]
    assert set(darts["modes"]) >= {"eager", "fast"} and darts["device"] == "cpu"
    assert "baseline_loss_max_rel_diff" in darts and darts["command"].startswith("python benchmarks/search_step.py")
    # three rounding baselines, recorded as their spread: the earliest departure, the largest difference
    assert darts["baseline_draws"] == 3 and len(darts["baseline_draws_loss_max_rel_diff"]) == 3
    assert darts["baseline_loss_max_rel_diff"] == max(darts["baseline_draws_loss_max_rel_diff"])
    firsts = [f for f in darts["baseline_draws_first_step_loss_over_1e-4"] if f is not None]
    assert darts["baseline_first_step_loss_over_1e-4"] == (min(firsts) if firsts else None)
    assert {"eager-perturbed", "eager-perturbed-1", "eager-perturbed-2"} <= set(darts["modes"])
    # what precision the kernels may take, torch's defaults unless --tf32 off (TF32 hides a 1-ulp baseline)
    import torch

    assert darts["tf32"] == {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
    for item in ("gdas darts", "rome-v2 darts", "entrannas darts"):  # issue 17: drift baseline, sync check
        rec = lines[PRIORITY.index(item)]
        assert "baseline_loss_max_rel_diff" in rec and rec["host_syncs_in_step"] != "not checked", rec
        # the step-by-step drift curves beside each other (a discrete method's maxima alone say little)
        n = rec["steps_compared"]
        assert len(rec["loss_rel_diff_per_step"]) == len(rec["baseline_loss_rel_diff_per_step"]) == n > 0
        assert max(rec["baseline_loss_rel_diff_per_step"]) == pytest.approx(rec["baseline_loss_max_rel_diff"],
                                                                           rel=1e-2)
    for item in ("pc-darts darts", "drnas darts", "sdarts-adv darts", "darts-minus darts"):  # issue 12's baselines
        rec = lines[PRIORITY.index(item)]
        assert {"eager", "fast"} <= set(rec["modes"]) and "graph" not in rec["modes"], rec  # (graph: CUDA only)
        assert rec["layers"] == 3, rec
    # PC-DARTS and DrNAS timed (and drift-checked) with their arch step, which their warm-up epochs leave out
    assert lines[PRIORITY.index("pc-darts darts")]["sets"] == ["optimizer.warmup_epochs=0"]
    assert lines[PRIORITY.index("drnas darts")]["sets"] == ["cell.k=2", "optimizer.k_schedule=2,1",
                                                            "optimizer.warmup_epochs=0"]
    assert set(lines[PRIORITY.index("sdarts-adv darts")]["modes"]) == {"eager", "fast"}
    on_gpu = {label: args for _, label, _, args in _gpu_all().items(False)}
    for item in ("pc-darts darts", "drnas darts", "darts-minus darts"):  # every cell body fused
        assert lines[PRIORITY.index(item)]["modes"]["fast"]["fast_cells"] == 3, item
        # on the GPU, the fused form's fp32 drift against the 1-ulp and the TF32-unit rounding baselines (TINY
        # leaves them out: issue 17's items take that path here)
        assert {"--drift-baseline", "--tf32-baseline"} <= set(on_gpu[item]), item
    prof = lines[PRIORITY.index("profile darts darts")]  # on a CPU the operators' own times, largest first
    assert prof["top"] and prof["what"].startswith("operators") and prof["summed_ms_per_step"] > 0
    assert prof["top"][0]["ms_per_step"] >= prof["top"][-1]["ms_per_step"]
    dw = lines[PRIORITY.index("dwconv darts")]  # the depthwise convs, torch's kernels against Triton's
    assert dw["interpreter"] is True and len(dw["geometries"]) == 2 <= dw["geometries_in_forward"]
    for g in dw["geometries"]:  # float32 against float64 torch, both forms (the interpreter computes as a GPU)
        assert max(g["triton_rel_err"]) < 1e-5 and max(g["torch_rel_err"]) < 1e-5, g
        assert g["calls_per_forward"] >= 1 and g["triton_fwd_bwd_ms"] > 0 and g["torch_fwd_bwd_ms"] > 0
    assert any(g["k"] > 1 for g in dw["geometries"])  # the spread first conv: k filters per channel
    bn = lines[PRIORITY.index("bn darts")]  # training BatchNorm, torch's kernels against Triton's
    assert bn["interpreter"] is True and len(bn["shapes"]) == 2 <= bn["shapes_in_forward"]
    for s in bn["shapes"]:  # float32 against float64 torch, both forms
        assert max(s["triton_rel_err"]) < 1e-4 and max(s["torch_rel_err"]) < 1e-4, s
        assert s["calls_per_forward"] >= 1 and s["triton_fwd_bwd_ms"] > 0 and s["torch_fwd_bwd_ms"] > 0
        assert max(s["triton-img1_rel_err"]) < 1e-4  # the other statistics layout, timed beside the default
    assert bn["images_per_program"] == 8 and bn["totals_per_forward"]["triton-img1_fwd_bwd_ms"] > 0
    variants = lines[PRIORITY.index("variants darts darts")]  # the same step in other forms, timed side by side
    assert variants["mode"] == "fast" and list(variants["variants"]) == ["default", "triton-dw+bn"]
    assert variants["variants"]["triton-dw+bn"]["settings"] == {"MERGE_KERNEL": 0, "POINTWISE_MATMUL": True,
                                                                "SPREAD_DEPTHWISE": True, "SPREAD_POOLS": True,
                                                                "DEPTHWISE_TRITON": True, "BATCHNORM_TRITON": True}
    assert all(v["ms_per_step_median"] > 0 for v in variants["variants"].values())
    first = variants["variants"]["default"]["losses"][0]  # same net, data and seed: the first loss to rounding
    assert all(abs(v["losses"][0] - first) < 1e-4 * first for v in variants["variants"].values()), variants
    assert list(lines[PRIORITY.index("variants darts nb201")]["variants"]) == ["default", "channels-last"]
    rome = lines[PRIORITY.index("rome-v2 darts")]
    assert rome["host_syncs_in_step"] == "none (meta device)"  # the fast step, checked on the meta device
    assert rome["modes"]["fast"]["grouped"] is True and rome["modes"]["fast"]["sample_chunk"] == 2  # TINY: K=2
    all_ops = lines[PRIORITY.index("rome-v2 darts all")]  # the all-op pass without the slots (on CUDA, captured)
    assert all_ops["sets"] == ["optimizer.group_ops=all", "cell.slots=false", "optimizer.samples=2"]
    assert all_ops["modes"]["fast"]["grouped"] and "baseline_loss_max_rel_diff" in all_ops
    assert lines[PRIORITY.index("gdas darts all-op")]["sets"] == ["cell.slots=false"]
    # the slot steps' kernels, largest first (TINY: the captured form without the slots, ROME with K=2)
    for item in ("profile gdas darts", "profile rome-v2 darts"):
        prof = lines[PRIORITY.index(item)]
        assert prof["as_captured"] is True and "cell.slots=false" in prof["sets"] and prof["top"], prof
    assert list(lines[PRIORITY.index("variants gdas darts")]["variants"]) == ["default", "all-op", "triton-bn"]
    rome_forms = lines[PRIORITY.index("variants rome-v2 darts")]  # ROME's slot step with Triton's BatchNorm (GPU)
    assert list(rome_forms["variants"]) == ["default", "triton-bn"] and rome_forms["sets"] == ["optimizer.samples=2"]
    assert rome_forms["variants"]["triton-bn"]["switches"]["BATCHNORM_TRITON"] is True
    # each variant says the switches it ran with, the default's included (what "default" was that day)
    assert variants["variants"]["default"]["switches"]["DEPTHWISE_TRITON"] is True
    device = lines[PRIORITY.index("entrannas darts device")]  # transit cells derived on the device
    assert device["sets"] == ["cell.transit_on_device=true"] and device["host_syncs_in_step"] == "none (meta device)"
    e2e = [lines[PRIORITY.index(item)] for item in ("e2e graph", "e2e eager")]
    assert all(r["status"] == "completed" for r in e2e)
    assert e2e[1]["runtime"]["fast"] is False and "runtime.cuda_graph=false" in e2e[1]["command"]
    # the graph item as a user runs it (cuda_graph=auto): on a CPU uncaptured, and nothing to explain
    assert "cuda_graph" not in e2e[0]["command"] and e2e[0]["runtime"]["cuda_graph"] is False
    assert "cuda_graph_off" not in e2e[0]["runtime"]
    f64 = lines[-2]  # each float32 mode against the float64 step: rounding-sized at the first step
    assert set(f64["modes"]) == {"eager", "fast"} and f64["device"] == "cpu"
    assert all(0 < m["loss_rel_err_per_step"][0] < 1e-5 for m in f64["modes"].values()), f64
    pack = lines[-1]  # TINY: one nb201 search alone on the CPU (gpu_packing.py's K > 1 was run by hand)
    assert (pack["k"], pack["completed"], pack["exit"], pack["slowdown"]) == (1, 1, 0, 1.0)
    assert pack["runs"][0]["images_per_s"] > 0 and "--space nb201" in pack["command"]


def test_items_that_do_not_fit_the_budget_are_skipped_and_said_so(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_all
    finally:
        sys.path.pop(0)
    # 28 s: the first item that fits (gdas, 23 s) with 5 s for the worker process to start (its imports count,
    # as every second of a device call does; a loaded CPU takes a few)
    only = ["darts darts", "darts nb201", "gdas darts", "entrannas darts", "e2e eager", "packing"]
    assert gpu_all.main(["--out", str(tmp_path), "--budget", "28", "--tiny", "--only", ",".join(only)]) == 0
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [gpu_all.item_label(r) for r in lines] == only
    skipped = [r["skipped"] for r in lines if "skipped" in r]
    # the darts items estimate 130 s and 50 s: over a 28 s budget; the first 23 s item (gdas) fits and runs,
    # which leaves too little for most of the rest; every item is accounted for
    assert skipped[:2] == ["darts darts", "darts nb201"] and "e2e eager" in skipped and "packing" in skipped
    ran = [r["item"] for r in lines if "item" in r]
    estimates = {label: est for est, label, _, _ in gpu_all.items(True)}
    # on a GPU every baseline is timed (TINY: the four with a cell or optimizer of their own)
    assert {f"{m} darts" for m in gpu_all.BASELINES} <= {label for _, label, _, _ in gpu_all.items(False)}
    assert ran[0] == "gdas darts" and all(estimates[label] <= 28 for label in ran)
    assert all(r["budget_s"] == 28 for r in lines if "skipped" in r)


# A worker that follows gpu_all's protocol (its items from --only, each named in all.current while it is taken,
# its line appended to all.jsonl) and does to its process what a faulty kernel can: "crash" dies by SIGSEGV,
# "hang" never returns, "lost" fails with the CUDA context gone (gpu_all.CONTEXT_LOST), "dead" ends before
# taking any item.
FAKE_WORKER = """
import json, os, signal, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
labels = sys.argv[sys.argv.index("--only") + 1].split(",")
def line(rec):
    with open(os.path.join(out, "all.jsonl"), "a") as fh:
        fh.write(json.dumps(rec) + "\\n")
if labels[0] == "dead":
    sys.exit(1)
for label in labels:
    with open(os.path.join(out, "all.current"), "w") as fh:
        json.dump({"label": label, "t": time.time()}, fh)
    if label == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if label == "hang":  # with a subprocess of its own, as an end-to-end item has
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.path.join(out, "child.pid"), "w") as fh:
            fh.write(str(child.pid))
        time.sleep(600)
    if label == "cut":  # dies writing its line
        with open(os.path.join(out, "all.jsonl"), "a") as fh:
            fh.write('{"item": "cut", "modes": {"ea')
        os.kill(os.getpid(), signal.SIGKILL)
    if label == "lost":
        line({"failed": label, "error": "CUDA error: an illegal memory access was encountered"})
        sys.exit(3)
    line({"item": label, "pid": os.getpid()})
    os.remove(os.path.join(out, "all.current"))
"""


def _gpu_all():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_all
    finally:
        sys.path.pop(0)
    return gpu_all


def test_an_item_that_kills_or_hangs_its_worker_fails_alone_and_a_new_worker_takes_the_rest(tmp_path):
    gpu_all = _gpu_all()
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    out = tmp_path / "out"
    out.mkdir()
    (out / "all.jsonl").write_text(json.dumps({"item": "a", "pid": 0}) + "\n")  # an earlier call's line
    labels = ["a", "crash", "b", "hang", "c", "lost", "cut", "d"]
    todo = [(1, label, "step", []) for label in labels]
    gpu_all.supervise(out, todo, lambda left: [sys.executable, str(worker), "--out", str(out),
                                               "--only", ",".join(left)],
                      limit=lambda est: 2.0 * est, poll_s=0.05)
    lines = [json.loads(line) for line in (out / "all.jsonl").read_text().splitlines()][1:]
    assert [gpu_all.item_label(r) for r in lines] == labels  # every item, once, in order
    a, crash, b, hang, c, lost, cut, d = lines
    assert crash["failed"] == "crash" and "killed by SIGSEGV" in crash["error"]
    assert hang["failed"] == "hang" and "over its limit of 2 s" in hang["error"] and hang["item_s"] >= 2
    assert lost["failed"] == "lost"
    # the line it was writing: cut off the file (every line of it is JSON), kept in its failure line
    assert "killed by SIGKILL" in cut["error"] and cut["cut_off_line"] == '{"item": "cut", "modes": {"ea'
    # a new worker after each: the crash, the hang (killed with its subprocess), the lost context, the cut line
    assert len({a["pid"], b["pid"], c["pid"], d["pid"]}) == 4
    assert not _alive(int((out / "child.pid").read_text()))


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not), within 5 s."""
    for _ in range(50):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.1)
    return True


def test_a_worker_that_never_takes_an_item_is_not_restarted_forever(tmp_path):
    gpu_all = _gpu_all()
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    todo = [(1, label, "step", []) for label in ("dead", "x")]
    gpu_all.supervise(tmp_path, todo, lambda left: [sys.executable, str(worker), "--out", str(tmp_path),
                                                    "--only", ",".join(left)],
                      poll_s=0.05)
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r["failed"] for r in lines] == ["dead", "x"]
    assert all("ended (exit status 1) before taking any item" in r["error"] for r in lines)


def test_a_stopped_call_stops_its_worker_and_what_the_worker_started(tmp_path):
    """A timeout's SIGTERM to gpu_all.py: the worker (and its end-to-end search) must not go on measuring
    into the device's next call."""
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import gpu_all\n"
              f"gpu_all.supervise(__import__('pathlib').Path({str(tmp_path)!r}), [(100, 'hang', 'step', [])],\n"
              f"    lambda left: [sys.executable, {str(worker)!r}, '--out', {str(tmp_path)!r},\n"
              f"                            '--only', ','.join(left)], poll_s=0.05)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "child.pid"
    for _ in range(200):  # the worker has started its subprocess
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    worker_pid = json.loads((tmp_path / "all.current").read_text()) and _worker_of(int(pid_file.read_text()))
    parent.terminate()
    assert parent.wait(timeout=30) == 128 + 15
    assert not _alive(int(pid_file.read_text())) and not _alive(worker_pid)


def _worker_of(pid: int) -> int:
    """The parent process of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def test_a_second_call_takes_the_rest_of_the_first(tmp_path, capsys):
    """ALL_REST_OF=<the first call's all.jsonl>: every item it did not take (skipped by its budget, never reached,
    its line cut off), in priority order; what it measured or saw fail is left out."""
    gpu_all = _gpu_all()
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join([json.dumps({"item": "darts darts", "modes": {}}),
                                json.dumps({"item": "darts nb201", "modes": {}}),
                                json.dumps({"failed": "gdas darts", "error": "CUDA error: an illegal memory access"}),
                                json.dumps({"skipped": "e2e eager", "spent_s": 500.0}),
                                json.dumps({"item": "packing", "k": 1}),  # one of packing's three lines
                                '{"item": "f64 rome-v2", "mo']) + "\n")  # cut off by the call's time limit
    errors = []

    def error(msg):
        errors.append(msg)
        raise SystemExit(2)

    rest = [label for _, label, _, _ in gpu_all.rest_of(gpu_all.items(True), first, error)]
    assert rest == [label for label in PRIORITY if label not in ("darts darts", "darts nb201", "gdas darts",
                                                                 "packing")] and errors == []
    # the shell's variable, through a real call: the rest of a first call that took every item is nothing (which
    # starts no worker: the selection itself is checked above, the worker's items by the TINY test)
    first.write_text("".join(json.dumps({"item": label}) + "\n" for label in PRIORITY))
    out = tmp_path / "second"
    result = subprocess.run(["bash", "benchmarks/gpu_session.sh", "all"], cwd=ROOT,
                            env=dict(_env(out), ALL_REST_OF=str(first)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"rest of {first}: {len(PRIORITY)} item(s) taken there" in result.stdout
    assert "0 to take" in result.stdout and "nothing to take" in result.stdout
    assert (out / "all.jsonl").read_text() == ""
    # bad input: a missing file, a file of something else, both selections at once
    for argv, says in ([["--rest-of", str(tmp_path / "nope.jsonl")], "nope.jsonl is not a file"],
                       [["--rest-of", str(ROOT / "pyproject.toml")], "has no line naming one of this script's items"],
                       [["--rest-of", str(first), "--only", "packing"], "give one of them"]):
        with pytest.raises(SystemExit) as stop:
            gpu_all.main(["--out", str(tmp_path / "x"), "--tiny", *argv])
        assert stop.value.code == 2 and says in capsys.readouterr().err, argv


def test_every_full_size_item_is_a_command_line_its_script_takes():
    """TINY runs the items at its own sizes and arguments; the GPU runs others (more steps, drift baselines, the
    baselines' own settings): a typo there would cost an item of a rare GPU call. Each step and profile item's
    arguments parse as its script's and its --set keys resolve against the method's components; each variant
    named is one step_variants.py has."""
    gpu_all = _gpu_all()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import search_step
        import step_profile
        import step_variants
    finally:
        sys.path.pop(0)
    kinds = set()
    for _, label, kind, args in gpu_all.items(False):
        kinds.add(kind)
        if kind in ("step", "profile"):
            script = search_step if kind == "step" else step_profile
            search_step.resolve_step(script.parser().parse_args(args))
        if kind == "variants":
            names = args[args.index("--variants") + 1].split(",")
            assert set(names) <= set(step_variants.VARIANTS), (label, names)
    assert {"step", "profile", "variants"} <= kinds
    # a bad key is what this catches: the resolver names it and the valid ones
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="'kk'; valid choices: k"):
        search_step.resolve_step(search_step.parser().parse_args(["--method", "drnas", "--space", "darts",
                                                                  "--set", "cell.kk=4"]))


def test_an_earlier_calls_file_is_never_overwritten(tmp_path):
    """Run twice into one folder (outside the device tool $OUT defaults to the day's benchmarks/results folder),
    or with ALL_REST_OF naming the file the call would write: the call stops before writing, saying why."""
    earlier = tmp_path / "all.jsonl"
    earlier.write_text(json.dumps({"item": "darts darts", "modes": {}}) + "\n")
    result = subprocess.run(["bash", "benchmarks/gpu_session.sh", "all"], cwd=ROOT,
                            env=dict(_env(tmp_path), ALL_REST_OF=str(earlier)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "already holds 1 line(s) from an earlier call" in result.stderr, result
    assert earlier.read_text() == json.dumps({"item": "darts darts", "modes": {}}) + "\n"
