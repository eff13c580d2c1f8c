"""benchmarks/gpu_tables.py: the BENCHMARKS.md tables and target verdicts from a `gpu_session.sh all` file.
The records here are written by hand with round figures, so every expected ratio and verdict below is
worked out by hand, not by the script."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_tables", ROOT / "benchmarks" / "gpu_tables.py")
gpu_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_tables)


def _step(item, eager, fast, graph=None, peaks=(7.6, 3.0, 3.5), drift=None, syncs="none", counted_capture=True):
    modes = {"eager": {"ms_per_step_median": eager, "peak_mem_gib": peaks[0], "fast_cells": 0},
             "fast": {"ms_per_step_median": fast, "peak_mem_gib": peaks[1], "fast_cells": 8}}
    if graph is not None:
        modes["graph"] = {"ms_per_step_median": graph, "peak_mem_gib": peaks[2], "fast_cells": 8}
        if counted_capture:
            modes["graph"]["peak_includes_capture"] = True
    rec = {"item": item, "method": item.split()[0], "space": item.split()[1], "batch": 64, "channels": 16,
           "layers": 8, "device": "NVIDIA H200", "torch": "2.11.0+cu130", "python": "3.12.3", "date": "2026-12-05",
           "host_syncs_in_step": syncs, "steps_compared": 10, "modes": modes}
    for mode, (first, rel) in (drift or {}).items():
        sfx = {"fast": "", "graph": "_graph", "baseline": None}[mode]
        if mode == "baseline":
            rec.update({"baseline_first_step_loss_over_1e-4": first, "baseline_loss_max_rel_diff": rel,
                        "baseline_arch_max_rel_diff": 1e-6})
        else:
            rec.update({f"first_step_loss_over_1e-4{sfx}": first, f"loss_max_rel_diff{sfx}": rel,
                        f"arch_max_rel_diff{sfx}": 1e-6})
    return rec


RECORDS = [
    _step("darts darts", 1000.0, 120.0, 80.0, drift={"baseline": (None, 1e-7), "fast": (None, 5e-7),
                                                     "graph": (None, 5e-6)}),
    _step("darts nb201", 300.0, 40.0, drift={"baseline": (None, 2e-7), "fast": (None, 2e-7)}),
    _step("gdas darts", 200.0, 60.0, 50.0, drift={"baseline": (4, 0.1), "fast": (4, 0.12), "graph": (3, 0.1)}),
    _step("rome-v2 darts", 726.0, 300.0, drift={"baseline": (None, 1e-7), "fast": (2, 6e-3)}),
    {"item": "e2e graph", "status": "completed", "search_s": 12.5, "wall_s": 30.0, "steps": 469,
     "runtime": {"fast": True, "fast_cells": 15, "cuda_graph": True}},
    {"item": "f64 rome-v2", "batch": 4, "channels": 4, "layers": 3, "device": "NVIDIA H200",
     "modes": {"eager": {"loss_rel_err_per_step": [4.6e-09, 1.2e-07], "param_max_rel_err_per_step": [8.9e-07, 2.6e-06]},
               "fast": {"loss_rel_err_per_step": [1.1e-07, 9.8e-06], "param_max_rel_err_per_step": [2.2e-03, 0.23]}}},
    {"skipped": "packing", "spent_s": 470.2, "estimate_s": 240, "budget_s": 510.0},
    {"failed": "entrannas darts", "error": "OutOfMemoryError: CUDA out of memory"},
]


def test_targets_and_verdicts_from_hand_made_records():
    text = gpu_tables.tables(RECORDS, source="x/all.jsonl")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    # darts darts: graph (80 ms) is the faster mode; 80 <= 85 and its 3.5 GiB <= 7.35
    assert rows["darts darts: at most 85 ms per step"].endswith("| 80.0 ms (graph) | yes |")
    assert rows["darts darts: peak memory at most 7.35 GiB"].endswith("| 3.50 GiB (graph) | yes |")
    assert rows["darts nb201: at most 30 ms per step"].endswith("| 40.0 ms (fast) | no |")  # no graph run
    assert rows["gdas darts: at least 3x its eager step"].endswith("| 4.00x (graph) | yes |")  # 200 / 50
    assert rows["rome-v2 darts: at least 3x its eager step"].endswith("| 2.42x (fast) | no |")  # 726 / 300
    # drift: neither leaves eager -> within 10x of the baseline's maximum (5e-7 vs 1e-7 yes, 5e-6 no)
    assert rows["darts darts, fast: fp32 drift within the rounding baseline"].endswith("| within | yes |")
    assert "outside: max loss difference 5.0e-06 > 10x the baseline's 1.0e-07" in \
        rows["darts darts, graph: fp32 drift within the rounding baseline"]
    # leaving eager at the baseline's step is within; a step earlier, or where the baseline never does, is not
    assert rows["gdas darts, fast: fp32 drift within the rounding baseline"].endswith("| within | yes |")
    assert "leaves eager at step 3, the baseline at step 4" in rows["gdas darts, graph: fp32 drift within the rounding baseline"]
    assert "leaves eager at step 2, the baseline never does" in rows["rome-v2 darts, fast: fp32 drift within the rounding baseline"]
    # CUDA graphs on by default needs graph runs within the baseline on darts AND nb201: not shown here
    assert rows["runtime.cuda_graph on by default: graph mode ran on darts and nb201 within the baseline"].endswith("| no |")
    # the step table: speedups by hand (1000/120, 1000/80)
    assert "| darts darts | 64, 16, 8 | 1000.0 | 120.0 | 80.0 | 8.33x / 12.50x | 7.60 / 3.00 / 3.50 | 8 | none |" in text
    assert "| e2e graph | completed | 12.5 | 30.0 | 469 | 15 | yes |" in text
    assert "* packing: skipped (470.2 s spent, estimate 240 s, budget 510.0 s)" in text
    # the float64 check is its own table, not a step row
    assert "| f64 rome-v2 | 4, 4, 3 | fast | 1.1e-07 9.8e-06 | 2.2e-03 2.3e-01 |" in text
    assert "| f64 rome-v2 | 4, 4, 3 | 1" not in text
    assert "* entrannas darts: failed: OutOfMemoryError: CUDA out of memory" in text
    assert "device NVIDIA H200, torch 2.11.0+cu130" in text and "(A CPU file" not in text


def test_cuda_graph_default_is_said_when_graph_mode_ran_within_the_baseline_on_both_spaces():
    records = [_step("darts darts", 1000.0, 120.0, 80.0, drift={"baseline": (None, 1e-7), "fast": (None, 1e-7),
                                                                "graph": (None, 3e-7)}),
               _step("darts nb201", 300.0, 40.0, 25.0, drift={"baseline": (None, 2e-7), "fast": (None, 2e-7),
                                                              "graph": (None, 1e-6)})]
    text = gpu_tables.tables(records)
    assert "| runtime.cuda_graph on by default: graph mode ran on darts and nb201 within the baseline | ran, within | yes |" in text
    assert "| darts nb201: at most 30 ms per step | 25.0 ms (graph) | yes |" in text


def test_a_failed_capture_is_a_graph_cell_and_a_line_the_other_modes_stay_judged():
    """search_step.py --compare keeps eager and fast when graph mode's capture fails (graph_failed)."""
    rec = _step("pc-darts darts", 900.0, 300.0, drift={"baseline": (None, 1e-7), "fast": (None, 2e-7)})
    rec["graph_failed"] = "capturing the search step of X in a CUDA graph failed (boom); run with --set ..."
    darts = _step("darts nb201", 300.0, 40.0, 25.0, drift={"baseline": (None, 2e-7), "fast": (None, 2e-7),
                                                           "graph": (None, 1e-6)})
    text = gpu_tables.tables([darts, rec])
    assert "| pc-darts darts | 64, 16, 8 | 900.0 | 300.0 | capture failed | 3.00x / - | 7.60 / 3.00 / - | 8 | none |" \
        in text  # 900 / 300 by hand
    assert "* pc-darts darts: capturing the search step of X in a CUDA graph failed (boom)" in text
    assert "| pc-darts darts, fast: fp32 drift within the rounding baseline | within | yes |" in text


def test_a_line_cut_off_mid_write_is_named(tmp_path, capsys):
    path = tmp_path / "all.jsonl"
    # the last line, as a call cut off by its time limit leaves it: named, left out, the rest read
    path.write_text(json.dumps(RECORDS[0]) + "\n" + '{"item": "darts nb2')
    assert gpu_tables.load(path) == [RECORDS[0]]
    assert "all.jsonl:2: not a JSON line" in capsys.readouterr().err
    # anywhere else it is not a file a run writes: named, nothing read
    path.write_text(json.dumps(RECORDS[0]) + "\n" + '{"item": "darts nb2\n' + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(SystemExit, match=r"all.jsonl:2: not a JSON line .*not the last one"):
        gpu_tables.load(path)
    with pytest.raises(SystemExit, match="no such file"):
        gpu_tables.main([str(tmp_path / "missing.jsonl")])


def test_the_cpu_check_of_the_gpu_script_renders(capsys):
    """The TINY file committed from the GPU image's versions (torch 2.11, Python 3.12): every item appears."""
    path = ROOT / "benchmarks" / "results" / "2026-12-04-tiny-torch211-py312" / "all.jsonl"
    assert gpu_tables.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "(A CPU file: the sizes are the TINY ones" in out
    for rec in gpu_tables.load(path):
        label = rec.get("item") or rec.get("skipped") or rec.get("failed")
        if label == "packing":  # its rows go under their own heading, one per K
            assert f"| {rec['k']} | {rec['completed']} | {rec['total_images_per_s']} |" in out
        else:
            assert label in out, label


def test_rome_setting_names_the_fastest_of_its_steps():
    """ROME v2 timed with both grouped formulations: the row names the fastest of the all-op pass, the
    chosen-op pass and the eager K-loop (the mean of the two items' eager medians), with its settings."""
    chosen = _step("rome-v2 darts chosen", 730.0, 250.0, drift={"baseline": (None, 1e-7), "fast": (None, 2e-7)})
    text = gpu_tables.tables(RECORDS + [chosen])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["rome-v2 darts chosen: at least 3x its eager step"].endswith("| 2.92x (fast) | no |")  # 730 / 250
    assert rows["ROME's settings on CUDA: the fastest of its steps"] == (
        "| ROME's settings on CUDA: the fastest of its steps | chosen-op pass (optimizer.group_ops=chosen): "
        "fast all-op pass 300.0 ms, chosen-op pass 250.0 ms, eager K-loop 728.0 ms | - |")
    slow = [_step("rome-v2 darts", 726.0, 800.0), _step("rome-v2 darts chosen", 700.0, 900.0)]
    row = next(line for line in gpu_tables.tables(slow).splitlines() if "ROME's settings" in line)
    assert ("| eager K-loop (optimizer.group_samples=false): fast all-op pass 800.0 ms, chosen-op pass 900.0 ms, "
            "eager K-loop 713.0 ms |") in row  # (726 + 700) / 2
    assert "ROME's settings" not in gpu_tables.tables(RECORDS)  # only with both ROME items
    # files since the default became group_ops=auto: "rome-v2 darts" is the chosen-op pass on CUDA, "... all" the other
    now = [_step("rome-v2 darts", 850.0, 480.0), _step("rome-v2 darts all", 800.0, 790.0, 760.0)]
    row = next(line for line in gpu_tables.tables(now).splitlines() if "ROME's settings" in line)
    assert ("| chosen-op pass (optimizer.group_ops=chosen): graph all-op pass 760.0 ms, chosen-op pass 480.0 ms, "
            "eager K-loop 825.0 ms |") in row  # (850 + 800) / 2
    # and through the conv slots (cell.slots=true): a fourth option, its own 3x row, its eager in the mean
    slots = _step("rome-v2 darts slots", 830.0, 700.0, 210.0)
    text = gpu_tables.tables(now + [slots])
    row = next(line for line in text.splitlines() if "ROME's settings" in line)
    assert ("| graph conv slots (optimizer.group_ops=all, cell.slots=true): graph all-op pass 760.0 ms, chosen-op "
            "pass 480.0 ms, eager K-loop 826.7 ms, graph conv slots 210.0 ms |") in row  # (850 + 800 + 830) / 3
    assert "| rome-v2 darts slots: at least 3x its eager step | 3.95x (graph) | yes |" in text  # 830 / 210
    device = _step("entrannas darts device", 250.0, 120.0, 50.0)  # EnTranNAS, transit cells on the device
    assert "| entrannas darts device: at least 3x its eager step | 5.00x (graph) | yes |" in \
        gpu_tables.tables([device])  # 250 / 50


def test_files_from_before_the_capture_and_sync_fixes_are_not_judged_on_them():
    """2026-12-04's H200 file: a graph's peak left out its capture (0.42 GiB where fast took 8.25), and the
    sync check ran the eager rounding baseline's step (modes[-1]), not the fast one."""
    old = _step("darts darts", 722.8, 251.6, 115.8, peaks=(7.92, 8.25, 0.42), counted_capture=False,
                syncs="sync found: called a synchronizing CUDA operation")
    old["modes"]["eager-perturbed"] = dict(old["modes"]["eager"])
    text = gpu_tables.tables([old], source="x/all.jsonl")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["darts darts: peak memory at most 7.35 GiB"].endswith(
        "| not in this file (graph: written before the capture was counted) | no |")
    assert "| 7.92 / 8.25 / ? | 8 | sync found: called a synchronizing CUDA operation (the eager-perturbed step: " \
        "not the fast one) |" in text
    new = _step("darts darts", 722.8, 251.6, 115.8, peaks=(7.92, 8.25, 8.4),
                drift={"baseline": (3, 0.2), "fast": (3, 0.1), "graph": (2, 0.1)})
    new["sync_checked_mode"] = "graph"
    new["baseline_draws"] = 3  # search_step.py --baseline-draws 3: the baseline row is their spread
    assert "| darts darts | 10 | baseline | 3 | 2.0e-01 | 1.0e-06 | (reference: the spread of 3 draws) |" in \
        gpu_tables.tables([new], source="x/all.jsonl")
    text = gpu_tables.tables([new], source="x/all.jsonl")
    assert "| 7.92 / 8.25 / 8.40 | 8 | none (graph step) |" in text
    assert "| darts darts: peak memory at most 7.35 GiB | 8.40 GiB (graph) | no |" in text
    assert "darts darts recompute" not in text  # an item of files since, judged where it is there:
    rc = _step("darts darts recompute", 722.8, 260.0, 120.0, peaks=(7.92, 6.9, 7.0))
    text = gpu_tables.tables([new, rc], source="x/all.jsonl")
    assert "| darts darts recompute: at most 85 ms per step | 120.0 ms (graph) | no |" in text
    assert "| darts darts recompute: peak memory at most 7.35 GiB | 7.00 GiB (graph) | yes |" in text


def test_variants_table_names_the_fastest_form():
    rec = {"item": "variants darts darts", "method": "darts", "space": "darts", "mode": "graph", "batch": 64,
           "channels": 16, "layers": 8, "device": "cuda:H", "steps": 10, "command": "python benchmarks/step_variants.py",
           "variants": {"default": {"ms_per_step_median": 115.8, "peak_mem_gib": 8.3, "vs_first": 1.0, "settings": {}},
                        "no-merge": {"ms_per_step_median": 90.0, "peak_mem_gib": 8.1, "vs_first": 1.287,
                                     "settings": {"MERGE_KERNEL": 0}}}}
    rec["variants"]["default"]["losses"] = [2.0, 1.5]
    rec["variants"]["no-merge"]["losses"] = [2.0, 1.503]
    rec["variants"]["triton-dw"] = {"failed": "CompilationError: out of resources", "settings": {"DEPTHWISE_TRITON": True}}
    text = gpu_tables.tables([rec])
    assert "| no-merge | 90.0 | 8.10 | 1.29x | 2.0e-03 |" in text  # (1.503 - 1.5) / 1.5
    assert "| triton-dw | failed: CompilationError: out of resources | | | |" in text
    assert "Fastest: no-merge (90.0 ms). Its settings: {'MERGE_KERNEL': 0}" in text


def test_dwconv_table_weighs_each_geometry_by_its_calls():
    geometry = {"input": [64, 32, 32, 32], "weight": [128, 1, 3, 3], "stride": [1, 1], "padding": [1, 1],
                "dilation": [1, 1], "k": 4, "relu": False, "remapped": True, "calls_per_forward": 6, "torch_fwd_ms": 0.05,
                "triton_fwd_ms": 0.04, "torch_fwd_bwd_ms": 0.3, "triton_fwd_bwd_ms": 0.2,
                "torch_rel_err": [1e-7, 2e-7, 3e-7], "triton_rel_err": [1e-7, 1e-7, 4e-7]}
    rec = {"item": "dwconv darts", "method": "darts", "space": "darts", "batch": 64, "channels": 16, "layers": 8,
           "device": "cuda:H", "triton": "3.6.0", "reps": 20, "command": "python benchmarks/dwconv_bench.py",
           "geometries": [geometry], "totals_per_forward": {"torch_fwd_ms": 0.3, "triton_fwd_ms": 0.24,
                                                            "torch_fwd_bwd_ms": 1.8, "triton_fwd_bwd_ms": 1.2}}
    text = gpu_tables.tables([rec])
    assert ("| 64x32x32x32 | 128x1x3x3 | 1 | 1 | 4 | no | yes | 6 | 0.050 | 0.040 | 0.300 | 0.200 | 1e-07, 2e-07, 3e-07 "
            "| 1e-07, 1e-07, 4e-07 |") in text
    assert "forward and both gradients torch 1.80 ms, Triton 1.20 ms" in text


def test_a_tf32_unit_baseline_is_a_second_verdict_where_the_kernels_used_tf32():
    """GDAS's graph step leaves eager at step 1, the 1-ulp baseline at step 2 (outside), the baseline at TF32's
    rounding unit at step 1 (within: not earlier); its fast step at step 0 is outside both. A record whose
    kernels did not use TF32 gets no TF32 target row."""
    rec = _step("gdas darts", 200.0, 60.0, 50.0, drift={"baseline": (2, 0.05), "fast": (0, 0.09),
                                                        "graph": (1, 0.08)})
    rec.update({"baseline_tf32_first_step_loss_over_1e-4": 1, "baseline_tf32_loss_max_rel_diff": 0.07,
                "baseline_tf32_arch_max_rel_diff": 0.5, "baseline_tf32_kernels_use_tf32": True})
    off = dict(rec, item="gdas darts slots", baseline_tf32_kernels_use_tf32=False)
    text = gpu_tables.tables([rec, off])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "leaves eager at step 1, the baseline at step 2" in rows["gdas darts, graph: fp32 drift within the rounding baseline"]
    assert rows["gdas darts, graph: drift within the TF32-unit rounding baseline (the kernels' TF32)"].endswith(
        "| within | yes |")
    assert "leaves eager at step 0, the baseline at step 1" in \
        rows["gdas darts, fast: drift within the TF32-unit rounding baseline (the kernels' TF32)"]
    assert "gdas darts slots, graph: drift within the TF32-unit rounding baseline (the kernels' TF32)" not in rows
    assert "| gdas darts | 10 | baseline, weights x (1 + 2^-11) | 1 | 7.0e-02 | 5.0e-01 | (reference at TF32's " \
           "rounding unit; TF32 on) |" in text
    assert "| gdas darts | 10 | graph | 1 | 8.0e-02 | 1.0e-06 | outside: leaves eager at step 1, the baseline at " \
           "step 2; against the TF32-unit baseline: within |" in text


def test_a_failure_that_lost_the_cuda_context_says_so():
    """gpu_all.py's worker marks an item after which CUDA no longer worked (a new worker took the rest)."""
    rec = {"failed": "dwconv darts", "error": "RuntimeError: CUDA error: an illegal memory access was encountered",
           "cuda_context": "unusable after this item: a new worker takes the items after it"}
    text = gpu_tables.tables([RECORDS[0], rec], source="x/all.jsonl")
    assert ("* dwconv darts: failed: RuntimeError: CUDA error: an illegal memory access was encountered (the CUDA "
            "context unusable after this item: a new worker takes the items after it)") in text


def _variants(item, forms):
    """A step_variants.py record: {name: (ms, losses) or an error string}."""
    vs = {}
    for name, v in forms.items():
        vs[name] = ({"failed": v, "settings": {}} if isinstance(v, str) else
                    {"ms_per_step_median": v[0], "peak_mem_gib": 8.0, "vs_first": 1.0, "settings": {}, "losses": v[1]})
    return {"item": item, "method": item.split()[1], "space": item.split()[2], "mode": "graph", "batch": 64,
            "channels": 16, "layers": 8, "device": "cuda:H", "steps": 10, "command": "python benchmarks/step_variants.py",
            "variants": vs}


def _decided(records):
    return [line for line in gpu_tables.decisions(records) if line.startswith("* ")]


def test_kernel_switches_are_decided_by_the_fastest_form_with_the_defaults_losses():
    same, off_at_1 = [2.0, 1.9, 1.8], [2.0, 1.95, 1.8]  # 1.95 vs 1.9: 2.6e-2 relative at step 1
    darts = _step("darts darts", 800.0, 250.0, 110.0, drift={"baseline": (2, 0.3), "graph": (2, 0.2)})
    var = _variants("variants darts darts", {"default": (100.0, same), "triton-dw": (90.0, same),
                                             "triton-bn": (99.0, same), "triton-dw+bn": (85.0, off_at_1)})
    lines = _decided([darts, var])
    # triton-dw+bn is fastest but leaves the default's losses at step 1, before the baseline's step 2: left out;
    # triton-dw (90 <= 0.98 x 100) wins: the depthwise switch on, BatchNorm's off
    assert "triton-dw+bn left out: its loss leaves the default's at step 1, the rounding baseline's at step 2" in lines[0]
    assert lines[0].startswith("* `variants darts darts`: triton-dw (")
    assert "* **`harness.nn.fused.DEPTHWISE_TRITON = True`**." in lines
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = False`**." in lines
    # leaving at the baseline's own step (2) is within rounding
    assert gpu_tables._same_math({"losses": [2.0, 1.9, 1.7]}, {"losses": same}, darts) is None
    # 1% faster is not enough (99 > 0.98 x 100): the default stays
    var2 = _variants("variants darts darts", {"default": (100.0, same), "triton-bn": (99.0, same)})
    lines = _decided([darts, var2])
    assert "triton-bn (99.0 ms) is not 2% faster than the default (100.0 ms)" in lines[0]
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = False`**." in lines
    assert not any("DEPTHWISE_TRITON" in line for line in lines)  # not timed: not decided
    # a form that failed is not taken; a loss that leaves where the baseline never does is not the same math
    var3 = _variants("variants darts darts", {"default": (100.0, same), "triton-dw": "CompilationError: x",
                                              "triton-bn": (80.0, off_at_1)})
    nobase = _step("darts darts", 800.0, 250.0, 110.0, drift={"baseline": (None, 1e-7), "graph": (None, 1e-7)})
    lines = _decided([nobase, var3])
    assert "triton-dw failed" in lines[0] and "the rounding baseline's never does" in lines[0]
    assert "* **`harness.nn.fused.DEPTHWISE_TRITON = False`**." in lines
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = False`**." in lines


def test_batchnorm_in_triton_is_vetoed_by_nb201_or_turned_on_by_it():
    same = [2.0, 1.9]
    var = _variants("variants darts darts", {"default": (100.0, same), "triton-bn": (90.0, same)})
    slower = _variants("variants darts nb201", {"default": (30.0, same), "triton-bn": (31.0, same)})  # 1.033x
    lines = _decided([var, slower])
    assert "* `variants darts nb201`: triton-bn 31.0 ms against 30.0 (1.03x); more than 2% slower here" in lines[1]
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = False`**." in lines
    # not timed on darts: nb201's 28 <= 0.98 x 30 turns it on
    dw_only = _variants("variants darts darts", {"default": (100.0, same), "triton-dw": (99.5, same)})
    faster = _variants("variants darts nb201", {"default": (30.0, same), "triton-bn": (28.0, same)})
    lines = _decided([dw_only, faster])
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = True`**." in lines
    assert "* **`harness.nn.fused.DEPTHWISE_TRITON = False`**." in lines  # 99.5 > 98


def test_images_a_statistics_program_and_gdas_slots_are_decided():
    bn = {"item": "bn darts", "images_per_program": 8,
          "totals_per_forward": {"triton_fwd_bwd_ms": 10.0, "triton-img1_fwd_bwd_ms": 9.5}}
    assert "**`harness.nn.bntriton.IMAGES_PER_PROGRAM = 1`**" in _decided([bn])[0]  # 9.5 <= 9.8
    bn["totals_per_forward"]["triton-img1_fwd_bwd_ms"] = 9.9
    assert "**`harness.nn.bntriton.IMAGES_PER_PROGRAM = 8`**" in _decided([bn])[0]
    gdas = _step("gdas darts", 190.0, 146.0, 117.0)
    # outside the 1-ulp baseline (leaves at 0 where it leaves at 1), within the TF32-unit one (which leaves at 0)
    slots = _step("gdas darts slots", 190.0, 150.0, 60.0, drift={"baseline": (1, 0.05), "graph": (0, 0.09)})
    slots.update({"baseline_tf32_first_step_loss_over_1e-4": 0, "baseline_tf32_loss_max_rel_diff": 0.1,
                  "baseline_tf32_arch_max_rel_diff": 1.0, "baseline_tf32_kernels_use_tf32": True})
    (line,) = _decided([gdas, slots])
    assert "slots 60.0 ms (graph) against 117.0 (graph), 190.0 eager (3.17x)" in line
    assert "drift outside: leaves eager at step 0, the baseline at step 1 / within" in line
    assert line.endswith("**`cell.slots` on for GDAS on CUDA**.")
    slots["baseline_tf32_kernels_use_tf32"] = False  # then only the 1-ulp verdict counts
    assert _decided([gdas, slots])[0].endswith("**`cell.slots` off for GDAS on CUDA**.")
    slots["baseline_tf32_kernels_use_tf32"] = True
    slots["host_syncs_in_step"] = "2 (cudaStreamSynchronize)"
    assert _decided([gdas, slots])[0].endswith("**`cell.slots` off for GDAS on CUDA**.")


def test_the_triton_kernels_each_item_compiled_or_loaded_are_a_table():
    """gpu_all.py's per-item count (benchmarks/triton_cache.py's carried cache loaded or not): one row per item
    that compiled or loaded any kernel, none for an item that did neither."""
    slots = {**_step("gdas darts", 200.0, 60.0, 50.0), "item": "gdas darts slots",
             "triton_kernels": {"compiled": 3, "compile_s": 0.96, "from_cache": 11}}
    text = gpu_tables.tables([RECORDS[0], slots], source="x/all.jsonl")
    assert "| gdas darts slots | 3 | 1.0 | 11 |" in text
    assert "| darts darts |" not in text.split("### Triton kernels")[1]


def test_two_calls_files_make_one_set_of_tables(tmp_path, capsys):
    """The second call (ALL_REST_OF) took what the first skipped and retook a failed item: its lines replace the
    first file's for those items; the rest keep the first file's order."""
    first = [RECORDS[0], {"skipped": "darts nb201", "spent_s": 500.0, "estimate_s": 50, "budget_s": 510.0},
             {"failed": "gdas darts", "error": "stopped after 120 s, over its limit"}, RECORDS[3]]
    second = [RECORDS[1], RECORDS[2]]
    paths = []
    for name, records in (("first", first), ("second", second)):
        paths.append(tmp_path / f"{name}.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in records))
    combined = tmp_path / "combined.jsonl"
    assert gpu_tables.main([*map(str, paths), "--combined", str(combined)]) == 0
    lines = [json.loads(line) for line in combined.read_text().splitlines()]
    assert [r.get("item") or r.get("skipped") or r.get("failed") for r in lines] == \
        ["darts darts", "rome-v2 darts", "darts nb201", "gdas darts"]
    assert all("item" in r for r in lines)  # the skip and the failure are gone, replaced
    out = capsys.readouterr().out
    assert f"Source: `{combined}` (4 records)" in out and "| darts nb201 |" in out
    # the combined file is never one of the files read
    with pytest.raises(SystemExit, match="one of the files read"):
        gpu_tables.main([*map(str, paths), "--combined", str(paths[0])])
    assert paths[0].read_text().count("\n") == 4


def test_files_since_the_slots_became_the_default_are_read_in_their_layout():
    """Since 2026-12-05 "rome-v2 darts" is the defaults: fast the chosen-op pass, graph the slots (one record, its
    eager counted once in the mean), "rome-v2 darts all" the all-op pass; "gdas darts" is the slots and "gdas darts
    all-op" the form they replaced."""
    rome = _step("rome-v2 darts", 900.0, 495.0, 330.0)
    all_op = _step("rome-v2 darts all", 800.0, 680.0, 690.0)
    text = gpu_tables.tables([rome, all_op])
    row = next(line for line in text.splitlines() if "ROME's settings" in line)
    assert ("| graph conv slots (optimizer.group_ops=all, cell.slots=true): fast all-op pass 680.0 ms, chosen-op "
            "pass 495.0 ms, eager K-loop 850.0 ms, graph conv slots 330.0 ms |") in row  # (900 + 800) / 2
    assert "| rome-v2 darts: at least 3x its eager step | 2.73x (graph) | no |" in text  # 900 / 330
    # the defaults' record alone still names the two of them and the eager loop
    alone = gpu_tables.rome_items({"rome-v2 darts": rome})
    assert alone == ("graph conv slots (optimizer.group_ops=all, cell.slots=true): chosen-op pass 495.0 ms, eager "
                     "K-loop 900.0 ms, graph conv slots 330.0 ms")
    gdas = _step("gdas darts", 190.0, 150.0, 60.0, drift={"baseline": (1, 0.05), "graph": (1, 0.09)})
    old = _step("gdas darts all-op", 190.0, 146.0, 117.0)
    (line,) = _decided([gdas, old])
    assert line.startswith("* `gdas darts` against `gdas darts all-op`: slots 60.0 ms (graph) against 117.0 (graph), "
                           "190.0 eager (3.17x); drift within")
    assert line.endswith("**`cell.slots` on for GDAS on CUDA**.")
    assert "| gdas darts all-op: at least 3x its eager step | 1.62x (graph) | no |" in gpu_tables.tables([old])


def test_kernel_switches_are_read_from_what_each_variant_ran_with():
    """Since 2026-12-05 step_variants.py records each variant's switches: the default then has the Triton
    depthwise kernels on, and "spread" (torch's kernels) is the form that times the switch off."""
    same = [2.0, 1.9, 1.8]
    darts = _step("darts darts", 800.0, 250.0, 104.0, drift={"baseline": (2, 0.3), "graph": (2, 0.2)})
    var = _variants("variants darts darts", {"default": (92.0, same), "spread": (104.8, same),
                                             "triton-bn": (98.7, same), "triton-dw+bn": (86.0, same)})
    sw = {"default": (True, False), "spread": (False, False), "triton-bn": (False, True), "triton-dw+bn": (True, True)}
    for name, (dw, bn) in sw.items():
        var["variants"][name]["switches"] = {"DEPTHWISE_TRITON": dw, "BATCHNORM_TRITON": bn}
    lines = _decided([darts, var])
    assert lines[0].startswith("* `variants darts darts`: triton-dw+bn (default 92.0 ms, spread 104.8 ms")
    assert "* **`harness.nn.fused.DEPTHWISE_TRITON = True`**." in lines
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = True`**." in lines  # 86 <= 0.98 x 92
    var["variants"]["triton-dw+bn"]["ms_per_step_median"] = 91.0  # not 2% faster than the default's 92
    lines = _decided([darts, var])
    assert "triton-dw+bn (91.0 ms) is not 2% faster than the default (92.0 ms)" in lines[0]
    assert "* **`harness.nn.fused.DEPTHWISE_TRITON = True`**." in lines  # the default's, which has it on
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = False`**." in lines
    # an item that timed the depthwise switch one way only does not decide it
    one_way = _variants("variants darts darts", {"default": (92.0, same), "triton-dw+bn": (80.0, same)})
    for name in ("default", "triton-dw+bn"):
        one_way["variants"][name]["switches"] = {"DEPTHWISE_TRITON": True, "BATCHNORM_TRITON": name != "default"}
    lines = _decided([darts, one_way])
    assert not any("DEPTHWISE_TRITON" in line for line in lines)
    assert "* **`harness.nn.groups.BATCHNORM_TRITON = True`**." in lines
