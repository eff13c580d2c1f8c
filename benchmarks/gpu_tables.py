"""The markdown tables for BENCHMARKS.md from one `gpu_session.sh all` file (all.jsonl), each figure judged
against the speed issues' targets, so that a session lent a GPU spends its time on the run, not on copying
numbers by hand:

    python benchmarks/gpu_tables.py benchmarks/results/<date>-gpu/all.jsonl >> BENCHMARKS.md
    # two calls (the second with ALL_REST_OF): later files' lines replace an earlier file's of the same item
    python benchmarks/gpu_tables.py first/all.jsonl second/all.jsonl --combined combined.jsonl

Targets (issues 12 and 17; judged only from the file):

* DARTS first-order on darts (batch 64, C=16, 8 cells): at most 85 ms per step (the faster of fast and
  graph), with peak memory at most the reference's 7.35 GiB, each judged also for item ``darts darts
  recompute`` (``runtime.fast_recompute=true``); DARTS on nb201: at most 30 ms.
* GDAS, ROME (v1, v2) and EnTranNAS(-DST): at least 3x faster per step than their own eager step. ROME v2
  is timed with both grouped formulations (the all-op pass and ``optimizer.group_ops=chosen``) and through
  the conv slots (``cell.slots=true``); a row names the fastest of those and the eager K-loop, with the
  settings that select it on CUDA. Since 2026-12-05 the default item "rome-v2 darts" is two of them (fast: the
  chosen-op pass; graph: the slots) and GDAS's default graph step is its slots; the forms they replaced are items
  ``gdas darts all-op`` and ``rome-v2 darts all`` (before: ``gdas darts slots``, ``rome-v2 darts slots``).
  EnTranNAS is timed also with ``cell.transit_on_device=true`` (item ``entrannas darts device``: capturable).
* fp32 drift within the rounding baseline (eager vs eager with every weight x (1 + 2^-23)). The rule
  used here, per mode: its loss leaves eager's (relative difference > 1e-4) no earlier than the baseline's
  does; where neither leaves, its largest relative loss difference is at most 10x the baseline's (or
  1e-6, float32's rounding of a loss). A discrete-choice method (GDAS, ROME, EnTranNAS) jumps apart at
  its first flipped choice, so the step of departure, not the maximum after it, is what can be compared
  (BENCHMARKS.md, "fp32 drift of the device-side choice ..."). The figures are printed beside the verdict.
  Where an item also has the TF32-unit baseline (eager with every weight x (1 + 2^-11); ``search_step.py
  --tf32-baseline``) and its kernels used TF32, the same rule against that baseline is a second row: cuDNN
  rounds float32 convolution operands to TF32 there, and eager and fused steps take different algorithms,
  so rounding at that unit is the arithmetic's own noise, which the 1-ulp float32 baseline sits below.
* `runtime.cuda_graph` on by default once graph mode has run (captured and replayed) on darts and nb201
  and its drift is within the baseline.

Then the settings the file decides ("Settings these figures decide": the Triton kernel switches, BatchNorm's
images a statistics program, GDAS's conv slots, ROME's step on CUDA), each by a rule written in
:func:`decisions` before a GPU ran them, so that the defaults follow the figures, not a reading of them.

A record's sizes are printed with it: a TINY (CPU) file gives the same tables at toy sizes, judged the same
way, and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
from gpu_all import ISSUE_17, item_label  # noqa: E402  (the items and their lines are gpu_all.py's)

DARTS_MS, NB201_MS, DARTS_PEAK_GIB, SPEEDUP = 85.0, 30.0, 7.35, 3.0
MODES = ("eager", "fast", "graph")


def load(path: Path) -> list[dict]:
    """The file's records in order. A last line that is not JSON is what a call cut off by its time limit while
    writing leaves: it is named on stderr and left out (gpu_all.py --rest-of takes that item again). A line that
    is not JSON anywhere else is not something a run writes: named, and nothing is read."""
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i < len(lines) - 1:
                raise SystemExit(f"{path}:{n}: not a JSON line ({exc.msg}), and not the last one: this is not a "
                                 f"file as gpu_session.sh all writes it")
            print(f"{path}:{n}: not a JSON line ({exc.msg}): the last line, cut off while it was written (the "
                  f"call's time limit?); left out", file=sys.stderr)
    return records


def combine(files: list[list[dict]]) -> list[dict]:
    """The records of several calls' files as one: a file's lines for an item replace every earlier file's lines
    for it (the first call's "skipped" line, or its "failed" one that a later call retook); the rest in order."""
    out: list[dict] = []
    for records in files:
        labels = {item_label(r) for r in records} - {None}
        out = [r for r in out if item_label(r) not in labels] + records
    return out


def _ms(rec: dict, mode: str) -> float | None:
    m = rec["modes"].get(mode)
    return None if m is None else m["ms_per_step_median"]


def _peak(rec: dict, mode: str) -> float | None:
    """A mode's peak memory in GiB, None where unknown: a graph's peak from a file written before
    search_step.py counted its capture (the replays allocate nothing, so it held the static tensors only)."""
    m = rec["modes"].get(mode)
    if m is None or (mode == "graph" and not m.get("peak_includes_capture")):
        return None
    return m["peak_mem_gib"]


def _syncs(rec: dict) -> str:
    """The sync check's verdict, and which mode's step it checked. Files written before 2026-12-04's fix
    checked the last mode, the eager rounding baseline under --drift-baseline, not the fast step."""
    said = rec.get("host_syncs_in_step", "not checked")
    if said == "not checked" or "sync_checked_mode" in rec:
        return said + (f" ({rec['sync_checked_mode']} step)" if rec.get("sync_checked_mode") else "")
    if "eager-perturbed" in rec["modes"] and not said.startswith("none"):
        return f"{said} (the eager-perturbed step: not the fast one)"
    return said


def _fmt(x, spec: str = ".1f", none: str = "-") -> str:
    if x is None or x != x:  # None or nan (peak memory off CUDA)
        return none
    return format(x, spec)


def best_mode(rec: dict) -> str:
    """The faster of fast and graph (graph only where it ran)."""
    return min((m for m in ("fast", "graph") if m in rec["modes"]), key=lambda m: _ms(rec, m))


def _drift(rec: dict, mode: str) -> tuple:
    """(first step off by > 1e-4, max relative loss difference, arch difference) of ``mode`` (fast, graph)
    or of the rounding ``baseline``, under search_step.py's keys."""
    pre, suf = (f"{mode}_", "") if mode.startswith("baseline") else ("", "" if mode == "fast" else f"_{mode}")
    return tuple(rec[f"{pre}{key}{suf}"] for key in ("first_step_loss_over_1e-4", "loss_max_rel_diff",
                                                     "arch_max_rel_diff"))


def drift_verdict(rec: dict, mode: str, baseline: str = "baseline") -> str | None:
    """'within' / 'outside: why' for ``mode`` against the rounding ``baseline`` (module docstring; or
    ``baseline_tf32``, search_step.py --tf32-baseline's), or None when the record has no such baseline."""
    if f"{baseline}_loss_max_rel_diff" not in rec:
        return None
    (first, rel, _), (first0, rel0, _) = _drift(rec, mode), _drift(rec, baseline)
    if first is not None:
        if first0 is None:
            return f"outside: leaves eager at step {first}, the baseline never does"
        if first < first0:
            return f"outside: leaves eager at step {first}, the baseline at step {first0}"
        return "within"
    if first0 is not None:
        return "within"
    if rel <= max(10 * rel0, 1e-6):
        return "within"
    return f"outside: max loss difference {rel:.1e} > 10x the baseline's {rel0:.1e}"


def rome_setting(all_ops: dict | None, chosen: dict | None, slots: dict | None = None, chosen_mode: str = "fast",
                 slots_mode: str | None = None) -> str | None:
    """Which ROME step is fastest (eager K-loop, grouped all-op pass, grouped chosen-op pass, and where timed
    the grouped pass through the conv slots), as the settings that select it, from the ROME items (eager:
    the mean of the items' eager medians). ``chosen_mode``/``slots_mode``: the mode of the record that is that
    pass (None: its faster mode). Since 2026-12-05 one record is both: "rome-v2 darts", the defaults, whose fast
    mode is the chosen-op pass and whose graph mode the slots."""
    if chosen is None or (all_ops is None and slots is None):
        return None
    eagers = [_ms(r, "eager") for r in {id(r): r for r in (all_ops, chosen, slots) if r is not None}.values()]
    eager = sum(eagers) / len(eagers)
    options = {}
    if all_ops is not None:
        m = best_mode(all_ops)
        options[f"{m} all-op pass (optimizer.group_ops=all, cell.slots=false"
                f"{', runtime.cuda_graph=true' if m == 'graph' else ''})"] = _ms(all_ops, m)
    options["chosen-op pass (optimizer.group_ops=chosen)"] = _ms(chosen, chosen_mode)
    options["eager K-loop (optimizer.group_samples=false)"] = eager
    if slots is not None:
        ms = slots_mode or best_mode(slots)
        options[f"{ms} conv slots (optimizer.group_ops=all, cell.slots=true)"] = _ms(slots, ms)
    best = min(options, key=options.get)
    return f"{best}: " + ", ".join(f"{k.split(' (')[0]} {v:.1f} ms" for k, v in options.items())


def rome_items(by: dict) -> str | None:
    """:func:`rome_setting` from a file's ROME items, in each file layout:

    * since 2026-12-05 (defaults group_ops=auto and cell.slots=auto: the graph mode of "rome-v2 darts" is the
      slots, its fast mode the chosen-op pass) "rome-v2 darts all" is the all-op pass without the slots;
    * 2026-12-04b to 2026-12-05: "rome-v2 darts" the chosen-op pass (no graph mode), "... all" the all-op pass,
      "... slots" the slots;
    * before: "rome-v2 darts" the all-op pass, "... chosen" the chosen-op pass."""
    default, all_ops = by.get("rome-v2 darts"), by.get("rome-v2 darts all")
    older = "rome-v2 darts chosen" in by or "rome-v2 darts slots" in by
    if default is not None and "graph" in default["modes"] and not older:
        return rome_setting(all_ops, default, default, "fast", "graph")
    if all_ops is not None:
        return rome_setting(all_ops, default, by.get("rome-v2 darts slots"))
    return rome_setting(default, by.get("rome-v2 darts chosen"))


# A form replaces a default only when at least this much faster: the same captured DARTS step measured 115.2 and
# 115.7 ms in two scripts of one call (2026-12-04b), and GDAS's eager step 166.8 and 190.6 ms on two H200 runs
SWITCH_MARGIN = 0.02
# The variants that decide the Triton kernel switches, by the switches they set (DEPTHWISE_TRITON,
# BATCHNORM_TRITON). "default" is the shipped one of the file's day: both off before 2026-12-05's third H200 run;
# since, step_variants.py records every variant's switches as they ran ("switches"), which take precedence
KERNEL_FORMS = {"default": (False, False), "spread": (False, False), "triton-dw": (True, False),
                "triton-bn": (False, True), "triton-dw+bn": (True, True)}


def kernel_switches(name: str, variant: dict) -> tuple | None:
    """(DEPTHWISE_TRITON, BATCHNORM_TRITON) a variant ran with, or None for a variant that does not decide them."""
    if name not in KERNEL_FORMS:
        return None
    sw = variant.get("switches")
    if sw is not None and "DEPTHWISE_TRITON" in sw:
        return bool(sw["DEPTHWISE_TRITON"]), bool(sw["BATCHNORM_TRITON"])
    return KERNEL_FORMS[name]


def _first_off(losses: list, ref: list) -> int | None:
    """The first step whose loss is off ``ref``'s by > 1e-4 relative (None: never), as search_step.py counts."""
    for i, (a, b) in enumerate(zip(losses, ref)):
        if abs(a - b) > 1e-4 * max(abs(b), 1e-30):
            return i
    return None


def _same_math(v: dict, ref: dict, step_item: dict | None) -> str | None:
    """None when variant ``v``'s losses stay with ``ref``'s (the default form's, same data and seeds) at least as
    long as the item's rounding baseline stays with eager (its first step off; a variant that never leaves is
    within in any case), else why not."""
    first = _first_off(v.get("losses") or [], ref.get("losses") or [])
    if first is None:
        return None
    base = (step_item or {}).get("baseline_first_step_loss_over_1e-4")
    if base is not None and first >= base:
        return None
    return (f"its loss leaves the default's at step {first}, the rounding baseline's "
            + ("never does" if base is None else f"at step {base}")
            + ("" if step_item else " (no rounding baseline in this file)"))


def _faster(ms: float, than: float) -> bool:
    return ms <= (1 - SWITCH_MARGIN) * than


def decisions(records: list[dict]) -> list[str]:
    """The settings this file decides, each by a rule fixed before the figures came (the lines say which):

    * ``harness.nn.fused.DEPTHWISE_TRITON`` and ``harness.nn.groups.BATCHNORM_TRITON`` from ``variants darts
      darts``: the fastest of the forms in KERNEL_FORMS that ran with the default form's losses (``_same_math``),
      taken only if at least SWITCH_MARGIN faster than the default; BATCHNORM_TRITON (one switch for every
      space) is then kept on only if ``variants darts nb201``'s ``triton-bn`` is not SWITCH_MARGIN slower than
      its default, and turned on from nb201 alone if it is that much faster there and darts did not time it;
    * ``harness.nn.bntriton.IMAGES_PER_PROGRAM``: from ``bn darts``, 1 instead of 8 if the forward and gradients
      at 1 image a program are at least SWITCH_MARGIN faster in total;
    * ``cell.slots`` for GDAS on CUDA: ``gdas darts slots`` against ``gdas darts`` (each its faster mode), on if
      at least SWITCH_MARGIN faster with its drift within a rounding baseline (the 1-ulp one, or the TF32-unit one
      where the kernels used TF32) and no host sync in the step;
    * ROME's step on CUDA: ``rome_setting``, the fastest of its forms (drift in the table above).
    """
    by = {r.get("item"): r for r in records if "item" in r}
    out = []
    var, nb = by.get("variants darts darts"), by.get("variants darts nb201")
    dw = bn = None  # None: not decided by this file
    if var is not None and any(k in KERNEL_FORMS and k != "default" for k in var["variants"]):
        vs = var["variants"]
        ref = vs.get("default")
        if ref is None or "failed" in ref:
            out.append("* `DEPTHWISE_TRITON`, `BATCHNORM_TRITON`: not decided (the default form did not run in "
                       "`variants darts darts`).")
        else:
            ok, why = {}, []
            for name, v in vs.items():
                if kernel_switches(name, v) is None:
                    continue
                if "failed" in v:
                    why.append(f"{name} failed")
                    continue
                bad = _same_math(v, ref, by.get("darts darts"))
                if bad:
                    why.append(f"{name} left out: {bad}")
                    continue
                ok[name] = v["ms_per_step_median"]
            best = min(ok, key=ok.get)
            if best != "default" and not _faster(ok[best], ok["default"]):
                why.append(f"{best} ({ok[best]:.1f} ms) is not {SWITCH_MARGIN:.0%} faster than the default "
                           f"({ok['default']:.1f} ms)")
                best = "default"
            dw, bn = kernel_switches(best, vs[best])
            timed = ", ".join(f"{k} {v:.1f} ms" for k, v in ok.items())
            out.append(f"* `variants darts darts`: {best} ({timed}){'; ' + '; '.join(why) if why else ''}.")
            # a switch is decided only by an item that timed it both ways
            tried = [sw for k, v in vs.items() if (sw := kernel_switches(k, v)) is not None]
            dw = dw if len({t[0] for t in tried}) == 2 else None
            bn = bn if len({t[1] for t in tried}) == 2 else None
    if nb is not None and "triton-bn" in nb["variants"] and "default" in nb["variants"]:
        ref, v = nb["variants"]["default"], nb["variants"]["triton-bn"]
        if "failed" in v or "failed" in ref:
            note = "triton-bn failed" if "failed" in v else "the default failed"
            if bn and "failed" in v:
                bn = False
        else:
            bad = _same_math(v, ref, by.get("darts nb201"))
            ratio = v["ms_per_step_median"] / ref["ms_per_step_median"]
            note = f"triton-bn {v['ms_per_step_median']:.1f} ms against {ref['ms_per_step_median']:.1f} ({ratio:.2f}x)"
            if bad:
                note += f"; left out: {bad}"
                if bn:  # a form whose math differs on nb201 is off for every space
                    bn = False
            elif bn and ratio > 1 + SWITCH_MARGIN:
                note += f"; more than {SWITCH_MARGIN:.0%} slower here, so off for every space"
                bn = False
            elif bn is None and _faster(v["ms_per_step_median"], ref["ms_per_step_median"]):
                bn = True
        out.append(f"* `variants darts nb201`: {note}.")
    if dw is not None:
        out.append(f"* **`harness.nn.fused.DEPTHWISE_TRITON = {dw}`**.")
    if bn is not None:
        out.append(f"* **`harness.nn.groups.BATCHNORM_TRITON = {bn}`**.")
    b = by.get("bn darts")
    if b is not None:
        t = b["totals_per_forward"]
        if "triton-img1_fwd_bwd_ms" in t:
            one, default = t["triton-img1_fwd_bwd_ms"], t["triton_fwd_bwd_ms"]
            images = 1 if _faster(one, default) else b.get("images_per_program", 8)
            out.append(f"* `bn darts`: forward and gradients {default:.2f} ms at {b.get('images_per_program', 8)} "
                       f"images a program, {one:.2f} ms at 1: **`harness.nn.bntriton.IMAGES_PER_PROGRAM = "
                       f"{images}`**.")
    # GDAS: the all-op pass and the slots; since 2026-12-05 "gdas darts" is the slots (cell.slots=auto) and
    # "gdas darts all-op" the other, before "gdas darts" the all-op pass and "gdas darts slots" the slots
    g, gs = ((by.get("gdas darts all-op"), by.get("gdas darts")) if "gdas darts all-op" in by else
             (by.get("gdas darts"), by.get("gdas darts slots")))
    if g is not None and gs is not None:
        m, ms_ = best_mode(g), best_mode(gs)
        slot_ms, ms = _ms(gs, ms_), _ms(g, m)
        verdicts = [drift_verdict(gs, ms_)]
        if gs.get("baseline_tf32_kernels_use_tf32"):
            verdicts.append(drift_verdict(gs, ms_, "baseline_tf32"))
        within = "within" in verdicts
        said = str(gs.get("host_syncs_in_step", "not checked"))
        synced = not said.startswith(("none", "not checked"))
        on = _faster(slot_ms, ms) and within and not synced
        why = (f"slots {slot_ms:.1f} ms ({ms_}) against {ms:.1f} ({m}), {gs['modes']['eager']['ms_per_step_median']:.1f} "
               f"eager ({_ms(gs, 'eager') / slot_ms:.2f}x); drift " + " / ".join(str(v) for v in verdicts)
               + ("; host syncs in the step" if synced else ""))
        out.append(f"* `{gs['item']}` against `{g['item']}`: {why}: **`cell.slots` {'on' if on else 'off'} for GDAS "
                   f"on CUDA**.")
    rome = rome_items(by)
    if rome is not None:
        out.append(f"* ROME on CUDA: {rome} (its drift verdicts in the table above).")
    if not out:
        return []
    return ["### Settings these figures decide", "",
            "By the rules in `benchmarks/gpu_tables.py`'s `decisions` (fixed before the figures came); a setting "
            "in bold is what the defaults should say.", "", *out, ""]


def tables(records: list[dict], source: str = "all.jsonl") -> str:
    f64 = [r for r in records if str(r.get("item", "")).startswith("f64")]
    steps = [r for r in records if "modes" in r and r not in f64]
    e2e = [r for r in records if str(r.get("item", "")).startswith("e2e")]
    packs = [r for r in records if r.get("item") == "packing"]
    missing = [r for r in records if "skipped" in r or "failed" in r]
    first = steps[0] if steps else (records[0] if records else {})
    out = [f"Source: `{source}` ({len(records)} records); device {first.get('device', '?')}, torch "
           f"{first.get('torch', '?')}, Python {first.get('python', '?')}, {first.get('date', '?')}. Tables by "
           f"`python benchmarks/gpu_tables.py {source}`.", ""]
    if steps and steps[0].get("device") == "cpu":
        out += ["(A CPU file: the sizes are the TINY ones, the verdicts below say nothing about a GPU.)", ""]

    if steps:
        out += ["### Search step: eager vs fast vs CUDA graph", "",
                "| item | batch, C, cells | eager ms | fast ms | graph ms | speedup fast / graph | "
                "peak GiB eager / fast / graph | cells fast | host syncs in the fast step |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in steps:
            ms = {m: _ms(r, m) for m in MODES}
            peaks = " / ".join(_fmt(_peak(r, m), ".2f", "?" if m in r["modes"] else "-") for m in MODES)
            speed = " / ".join(_fmt(ms["eager"] / ms[m], ".2f") + "x" if ms.get(m) else "-" for m in ("fast", "graph"))
            graph = "capture failed" if "graph_failed" in r else _fmt(ms["graph"])
            out.append(f"| {r['item']} | {r['batch']}, {r['channels']}, {r['layers']} | {_fmt(ms['eager'])} | "
                       f"{_fmt(ms['fast'])} | {graph} | {speed} | {peaks} | "
                       f"{r['modes']['fast']['fast_cells']} | {_syncs(r)} |")
        failed = [r for r in steps if "graph_failed" in r]
        if failed:  # search_step.py --compare kept eager and fast; the graph row is the failure
            out += ["", "Graph mode failed (eager and fast measured as above):", ""]
            out += [f"* {r['item']}: {r['graph_failed']}" for r in failed]
        if any("graph" in r["modes"] and _peak(r, "graph") is None for r in steps):
            out += ["", "(? : a graph's peak memory that this file does not have: it was written before "
                    "`search_step.py` counted the capture, where a graph's memory is taken.)"]
        out.append("")

        drifted = [r for r in steps if "baseline_loss_max_rel_diff" in r]
        if drifted:
            out += ["### fp32 drift against the rounding baseline", "",
                    "Over each item's compared steps; first step whose loss is off by > 1e-4 relative (- never), "
                    "the largest relative loss difference, the largest relative arch-parameter difference at the "
                    "end. Verdict rule: the module docstring of `benchmarks/gpu_tables.py`.", "",
                    "| item | steps | mode | first step off | max loss diff | arch diff | verdict |",
                    "|---|---|---|---|---|---|---|"]
            for r in drifted:
                for mode in ["baseline"] + [m for m in ("fast", "graph") if m in r["modes"]]:
                    first, rel, arch = _drift(r, mode)
                    draws = r.get("baseline_draws", 1)
                    verdict = (("(reference)" if draws == 1 else f"(reference: the spread of {draws} draws)")
                               if mode == "baseline" else drift_verdict(r, mode))
                    tf32 = drift_verdict(r, mode, "baseline_tf32") if mode != "baseline" else None
                    if tf32 is not None:
                        verdict += f"; against the TF32-unit baseline: {tf32}"
                    out.append(f"| {r['item']} | {r['steps_compared']} | {mode} | {_fmt(first, 'd')} | "
                               f"{rel:.1e} | {arch:.1e} | {verdict} |")
                if "baseline_tf32_loss_max_rel_diff" in r:
                    first, rel, arch = _drift(r, "baseline_tf32")
                    on = "TF32 on" if r.get("baseline_tf32_kernels_use_tf32") else "TF32 not in use"
                    out.append(f"| {r['item']} | {r['steps_compared']} | baseline, weights x (1 + 2^-11) | "
                               f"{_fmt(first, 'd')} | {rel:.1e} | {arch:.1e} | (reference at TF32's rounding "
                               f"unit; {on}) |")
            out += ["", "The TF32-unit baseline (`search_step.py --tf32-baseline`, where an item has it): cuDNN's "
                    "convolutions round float32 operands to TF32 (10 mantissa bits) where TF32 is allowed, "
                    "torch's default, and eager and fused steps run different convolution algorithms, so a "
                    "1-ulp float32 perturbation sits below the kernels' own rounding; weights x (1 + 2^-11) is "
                    "a perturbation at that rounding unit.", ""] if any(
                "baseline_tf32_loss_max_rel_diff" in r for r in drifted) else [""]

    out += ["### Targets", "", "| target | figure | met |", "|---|---|---|"]
    by_item = {r["item"]: r for r in steps}
    for item, limit in (("darts darts", DARTS_MS), ("darts darts recompute", DARTS_MS), ("darts nb201", NB201_MS)):
        r = by_item.get(item)
        if r is None:
            if item != "darts darts recompute":  # (runtime.fast_recompute: timed since 2026-12-04's file)
                out.append(f"| {item}: at most {limit:g} ms per step | not measured | no |")
            continue
        m = best_mode(r)
        ms = _ms(r, m)
        out.append(f"| {item}: at most {limit:g} ms per step | {ms:.1f} ms ({m}) | {'yes' if ms <= limit else 'no'} |")
        if item.startswith("darts darts"):
            peak = _peak(r, m)
            met = "yes" if peak is not None and peak == peak and peak <= DARTS_PEAK_GIB else "no"
            figure = (f"{_fmt(peak, '.2f')} GiB ({m})" if peak is not None else
                      f"not in this file ({m}: written before the capture was counted)")
            out.append(f"| {item}: peak memory at most {DARTS_PEAK_GIB} GiB | {figure} | {met} |")
    for method in ISSUE_17:
        # chosen / all: ROME's group_ops; device: EnTranNAS's transit_on_device
        # slots: cell.slots=true (GDAS, and ROME with group_ops=all)
        for item in (f"{method} darts", f"{method} darts chosen", f"{method} darts all", f"{method} darts all-op",
                     f"{method} darts device", f"{method} darts slots"):
            r = by_item.get(item)
            if r is None:
                continue
            m = best_mode(r)
            ratio = _ms(r, "eager") / _ms(r, m)
            out.append(f"| {item}: at least {SPEEDUP:g}x its eager step | {ratio:.2f}x ({m}) | "
                       f"{'yes' if ratio >= SPEEDUP else 'no'} |")
    rome = rome_items(by_item)  # (each file layout: rome_items)
    if rome is not None:
        out.append(f"| ROME's settings on CUDA: the fastest of its steps | {rome} | - |")
    for r in steps:
        for m in ("fast", "graph"):
            v = drift_verdict(r, m) if m in r["modes"] else None
            if v is not None:
                out.append(f"| {r['item']}, {m}: fp32 drift within the rounding baseline | {v} | "
                           f"{'yes' if v == 'within' else 'no'} |")
            v = drift_verdict(r, m, "baseline_tf32") if m in r["modes"] else None
            if v is not None and r.get("baseline_tf32_kernels_use_tf32"):
                out.append(f"| {r['item']}, {m}: drift within the TF32-unit rounding baseline (the kernels' "
                           f"TF32) | {v} | {'yes' if v == 'within' else 'no'} |")
    graphed = [by_item.get(i) for i in ("darts darts", "darts nb201")]
    ok = all(r is not None and "graph" in r["modes"] and drift_verdict(r, "graph") == "within" for r in graphed)
    out.append(f"| runtime.cuda_graph on by default: graph mode ran on darts and nb201 within the baseline | "
               f"{'ran, within' if ok else 'not shown'} | {'yes' if ok else 'no'} |")
    out.append("")
    out += decisions(records)

    if e2e:
        out += ["### End-to-end quick search (one search epoch, a 1-epoch retrain)", "",
                "| item | status | search s | wall s | steps | fast cells | CUDA graph |", "|---|---|---|---|---|---|---|"]
        for r in e2e:
            rt = r.get("runtime") or {}
            graph = "yes" if rt.get("cuda_graph") else ("off: " + rt["cuda_graph_off"] if "cuda_graph_off" in rt else "no")
            out.append(f"| {r['item']} | {r['status']} | {_fmt(r.get('search_s'))} | {_fmt(r.get('wall_s'))} | "
                       f"{r.get('steps', '-')} | {rt.get('fast_cells', '-')} | {graph} |")
        out.append("")
    profiles = [r for r in records if str(r.get("item", "")).startswith("profile")]
    for r in profiles:
        out += [f"### Where the step's time goes: {r['item']} (`benchmarks/step_profile.py`)", "",
                f"{r['method']} on {r['space']} [{r['mode']}], batch {r['batch']}, C={r['channels']}, {r['layers']} "
                f"cells, {r['device']}: {r['wall_ms_per_step']:.1f} ms a step (wall, uncaptured), "
                f"{r['summed_ms_per_step']:.1f} ms of {r['what']} summed; `{r['command']}`", "",
                "| name | calls a step | ms a step |", "|---|---|---|"]
        out += [f"| {t['name'][:90]} | {t['calls_per_step']:.0f} | {t['ms_per_step']:.2f} |" for t in r["top"]]
        out.append("")
    for r in (r for r in records if str(r.get("item", "")).startswith("variants")):
        vs = r["variants"]
        first = next(iter(vs))
        out += [f"### The same step in other forms of the same math: {r['item']} (`benchmarks/step_variants.py`)",
                "", f"{r['method']} on {r['space']} [{r['mode']}], batch {r['batch']}, C={r['channels']}, "
                f"{r['layers']} cells, {r['device']}; median of {r['steps']} steps; `{r['command']}`", "",
                f"| variant | ms a step | peak GiB | speedup vs {first} | largest loss difference vs {first} |",
                "|---|---|---|---|---|"]
        ref = vs[first].get("losses") or []
        for name, v in vs.items():
            if "failed" in v:
                out.append(f"| {name} | failed: {v['failed']} | | | |")
                continue
            diff = max((abs(a - b) / max(abs(b), 1e-30) for a, b in zip(v.get("losses") or [], ref)), default=None)
            out.append(f"| {name} | {v['ms_per_step_median']:.1f} | {_fmt(v.get('peak_mem_gib'), '.2f')} | "
                       f"{v['vs_first']:.2f}x | {'-' if diff is None else f'{diff:.1e}'} |")
        ran = [name for name in vs if "failed" not in vs[name]]
        if not ran:
            out += ["", "Every variant failed.", ""]
            continue
        best = min(ran, key=lambda name: vs[name]["ms_per_step_median"])
        out += ["", f"Fastest: {best} ({vs[best]['ms_per_step_median']:.1f} ms)."
                + ("" if best == first else f" Its settings: {vs[best]['settings']} (harness.nn.fused; "
                   "BATCHNORM_TRITON: harness.nn.groups; or the memory format)."), ""]
    for r in (r for r in records if str(r.get("item", "")).startswith("dwconv")):
        t = r["totals_per_forward"]
        out += [f"### Depthwise convs, torch's kernels against Triton's: {r['item']} (`benchmarks/dwconv_bench.py`)",
                "", f"{r['method']} on {r['space']}, batch {r['batch']}, C={r['channels']}, {r['layers']} cells, "
                f"{r['device']}, triton {r['triton']}; median of {r['reps']} CUDA-graph replays per geometry"
                + (" (Triton's interpreter: the times say nothing about a GPU)" if r.get("interpreter") else "")
                + f"; `{r['command']}`", "",
                "| input | weight | stride | dilation | k | ReLU fused | gather folded | calls a forward | torch fwd ms "
                "| Triton fwd ms | torch fwd+bwd ms | Triton fwd+bwd ms | rel. err. vs float64, torch (y, dx, dw) "
                "| Triton |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in r["geometries"]:
            out.append(f"| {'x'.join(map(str, g['input']))} | {'x'.join(map(str, g['weight']))} | {g['stride'][0]} | "
                       f"{g['dilation'][0]} | {g['k']} | {'yes' if g['relu'] else 'no'} | "
                       f"{'yes' if g.get('remapped') else 'no'} | {g['calls_per_forward']} | "
                       f"{g['torch_fwd_ms']:.3f} | {g['triton_fwd_ms']:.3f} | {g['torch_fwd_bwd_ms']:.3f} | "
                       f"{g['triton_fwd_bwd_ms']:.3f} | " + ", ".join(f"{e:.0e}" for e in g["torch_rel_err"]) + " | "
                       + ", ".join(f"{e:.0e}" for e in g["triton_rel_err"]) + " |")
        out += ["", f"Per forward (each geometry's time times its calls): forward torch {t['torch_fwd_ms']:.2f} ms, "
                f"Triton {t['triton_fwd_ms']:.2f} ms; forward and both gradients torch {t['torch_fwd_bwd_ms']:.2f} "
                f"ms, Triton {t['triton_fwd_bwd_ms']:.2f} ms.", ""]
    for r in (r for r in records if str(r.get("item", "")).startswith("bn ")):
        out += [f"### Training BatchNorm, torch's kernels against Triton's: {r['item']} (`benchmarks/bn_bench.py`)",
                "", f"{r['method']} on {r['space']}, batch {r['batch']}, C={r['channels']}, {r['layers']} cells, "
                f"{r['device']}, triton {r['triton']}; median of {r['reps']} CUDA-graph replays per shape"
                + (" (Triton's interpreter: the times say nothing about a GPU)" if r.get("interpreter") else "")
                + f"; `{r['command']}`", "", bn_table(r), ""]
    if f64:
        out += ["### Each float32 mode against the float64 step (`benchmarks/drift_vs_float64.py`)", "",
                "| item | batch, C, cells | mode | loss relative error per step | largest parameter relative "
                "error per step |", "|---|---|---|---|---|"]
        for r in f64:
            for mode, m in r["modes"].items():
                out.append(f"| {r['item']} | {r['batch']}, {r['channels']}, {r['layers']} | {mode} | "
                           + " ".join(f"{v:.1e}" for v in m["loss_rel_err_per_step"]) + " | "
                           + " ".join(f"{v:.1e}" for v in m["param_max_rel_err_per_step"]) + " |")
        out.append("")
    if packs:
        out += ["### Runs packed on one GPU (`--runs-per-gpu K`)", "",
                "| K | completed | total images/s | mean search s | per-run slowdown |", "|---|---|---|---|---|"]
        for r in packs:
            out.append(f"| {r['k']} | {r['completed']} | {_fmt(r.get('total_images_per_s'))} | "
                       f"{_fmt(r.get('mean_search_s'), '.2f')} | {_fmt(r.get('slowdown'), '.2f')} |")
        out.append("")
    compiled = [r for r in records if r.get("triton_kernels")]
    if compiled:  # gpu_all.py's count; from_cache: benchmarks/triton_cache.py's carried cache (or an earlier item)
        out += ["### Triton kernels each item compiled or loaded (`benchmarks/triton_cache.py`)", "",
                "| item | compiled | compile s | loaded from the cache |", "|---|---|---|---|"]
        for r in compiled:
            k = r["triton_kernels"]
            out.append(f"| {r['item']} | {k.get('compiled', 0)} | {_fmt(k.get('compile_s'))} | "
                       f"{k.get('from_cache', 0)} |")
        out.append("")
    if missing:
        out += ["Not measured in this call:", ""]
        for r in missing:
            if "skipped" in r:
                out.append(f"* {r['skipped']}: skipped ({r['spent_s']} s spent, estimate {r['estimate_s']} s, "
                           f"budget {r['budget_s']} s)")
            else:
                lost = f" (the CUDA context {r['cuda_context']})" if r.get("cuda_context") else ""
                out.append(f"* {r['failed']}: failed: {r['error']}{lost}")
        out.append("")
    return "\n".join(out)


def bn_table(r: dict) -> str:
    """A ``benchmarks/bn_bench.py`` record's markdown table and totals (that script prints it too)."""
    lines = ["| input | affine | samples | calls a forward | torch fwd ms | Triton fwd ms | torch fwd+bwd ms "
             "| Triton fwd+bwd ms | rel. err. vs float64, torch (y, grads) | Triton |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["shapes"]:
        lines.append(f"| {'x'.join(map(str, s['input']))} | {'yes' if s['affine'] else 'no'} | {s['samples']} | "
                     f"{s['calls_per_forward']} | {s['torch_fwd_ms']:.3f} | {s['triton_fwd_ms']:.3f} | "
                     f"{s['torch_fwd_bwd_ms']:.3f} | {s['triton_fwd_bwd_ms']:.3f} | "
                     + ", ".join(f"{e:.0e}" for e in s["torch_rel_err"]) + " | "
                     + ", ".join(f"{e:.0e}" for e in s["triton_rel_err"]) + " |")
    t = r["totals_per_forward"]
    lines += ["", f"Per forward (each shape's time times its calls): forward torch {t['torch_fwd_ms']:.2f} ms, "
              f"Triton {t['triton_fwd_ms']:.2f} ms; forward and gradients torch {t['torch_fwd_bwd_ms']:.2f} ms, "
              f"Triton {t['triton_fwd_bwd_ms']:.2f} ms (Triton at {r.get('images_per_program', '?')} images a "
              "statistics program, the default)."]
    for form in sorted(k[:-len("_fwd_ms")] for k in t if k.startswith("triton-") and k.endswith("_fwd_ms")):
        lines.append(f"{form} (IMAGES_PER_PROGRAM={form.rsplit('img', 1)[-1]}): forward {t[form + '_fwd_ms']:.2f} ms, "
                     f"forward and gradients {t[form + '_fwd_bwd_ms']:.2f} ms.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="+", help="the all.jsonl that `bash benchmarks/gpu_session.sh all` wrote; "
                    "several calls' files in the order they ran (a later file's lines replace an earlier one's "
                    "for the same item)")
    ap.add_argument("--combined", metavar="JSONL", help="also write the records the tables were made from here")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.jsonl]
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"no such file: {path} (gpu_session.sh all writes $OUT/all.jsonl)")
    records = combine([load(path) for path in paths])
    if args.combined:
        if Path(args.combined).resolve() in {p.resolve() for p in paths}:
            raise SystemExit(f"--combined {args.combined}: that is one of the files read (it would be overwritten)")
        Path(args.combined).write_text("".join(json.dumps(r) + "\n" for r in records))
    print(tables(records, source=args.combined or " ".join(map(str, paths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
