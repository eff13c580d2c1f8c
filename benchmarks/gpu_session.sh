#!/usr/bin/env bash
# Every GPU figure the speed issues ask for, written as JSON lines (one per measurement, appended the moment
# it is taken, so a call cut off by its time limit still returns everything measured before) plus the log
# into $OUT (or benchmarks/results/<date>-gpu/ outside the device tool). Run from the repository root:
#
#   bash benchmarks/gpu_session.sh all       # ONE device call of at most 9 minutes, in priority order
#                                            # (benchmarks/gpu_all.py's items(), the authority): 1. darts on
#                                            # darts and on nb201 (eager vs fast vs graph, fp32 drift with
#                                            # three 1-ulp baselines, host-sync check) and a kernel profile of
#                                            # the darts step; 2. GDAS, ROME v2, EnTranNAS on darts (issue 17:
#                                            # rounding baselines, sync check; GDAS and ROME also through the
#                                            # conv slots, ROME also with group_ops=all, EnTranNAS also with
#                                            # transit_on_device); 3. the end-to-end quick nb201 DARTS search
#                                            # on Fashion-MNIST with CUDA graphs (the default); 4. the Triton
#                                            # kernels against torch's (depthwise, BatchNorm) and the captured
#                                            # step in other forms of the same math (step_variants.py: darts,
#                                            # nb201), the eight baselines on darts (PC-DARTS, DrNAS, SNAS,
#                                            # FairDARTS, SDARTS-RS/-ADV, beta-DARTS, DARTS-: eager vs fast vs
#                                            # graph, never timed on a GPU), GDAS's step variants and a
#                                            # profile of its slot step; 5. items measured on
#                                            # unchanged paths before (runtime.fast_recompute, DARTS 2nd order,
#                                            # Single-DARTS, DARTS-PT fixed alpha, EnTranNAS-DST, ROME v1, the
#                                            # eager end-to-end search); 6. ROME v2's float32 modes against its
#                                            # float64 step; 7. packing. Each item starts only if the time left
#                                            # ($ALL_BUDGET_S, default 510 s, minus what is spent) covers its
#                                            # estimate; a skipped or failed item is a JSON line saying so
#                                            # (benchmarks/gpu_all.py). Carry .carry (Fashion-MNIST and
#                                            # the Triton kernels, compiled before the call: below).
#                                            # A second call takes what the budget skipped: with
#                                            # ALL_REST_OF=<the first call's all.jsonl, copied into the
#                                            # checkout> every item that call did not take (skipped, or never
#                                            # reached), in the same order; ALL_ONLY='e2e graph,packing' takes
#                                            # just the items named.
#                                            # Then: python benchmarks/gpu_tables.py <the returned all.jsonl>
#                                            # prints the BENCHMARKS.md tables, each target judged, and the
#                                            # settings the figures decide.
#
# The phases below take the same figures at larger sizes, one 10-minute call each:
#
#   bash benchmarks/gpu_session.sh steps     # darts on darts/nb201 (50 steps, fp32 drift + 1-ulp baseline),
#                                            # s1-s4 (30 steps): eager vs fast vs graph            (~7 min H100)
#   bash benchmarks/gpu_session.sh methods   # every other method on darts (20 steps)              (~7 min)
#   bash benchmarks/gpu_session.sh drift     # fp32 drift on real data (Fashion-MNIST), 50 steps, darts and
#                                            # nb201, each mode next to the 1-ulp rounding baseline (~5 min)
#   bash benchmarks/gpu_session.sh e2e-eager # one quick-preset DARTS search, nb201, Fashion-MNIST, eager
#   bash benchmarks/gpu_session.sh e2e-fast  # the same search: fast cell; fast + CUDA graph; that again on
#                                            # one CPU core (taskset), to show the CPU does not set the pace
#   bash benchmarks/gpu_session.sh packing   # issue 13: one quick nb201 DARTS search alone vs 4 and 8 packed
#                                            # on the GPU (--runs-per-gpu): total images/s, per-run slowdown
#                                            # (benchmarks/gpu_packing.py; ~4 min H100, a guess)
#
# drift, e2e-* and packing need Fashion-MNIST: copy ../shared/data/fashion-mnist to .carry/fashion-mnist here and carry .carry.
# The Triton kernels' forms, compiled before the call with the GPU image's Triton (about a minute, no GPU needed):
#   /tmp/v212/bin/python benchmarks/triton_cache.py     # -> .carry/triton-cache (5 MiB; v212: torch 2.11, Triton 3.6,
#                                                       # Python 3.12: benchmarks/results/2026-12-05-triton36/run.sh)
# installed here when its Triton is the machine's, so the call loads them instead of compiling (about 0.3 s a form,
# some 140 forms); each item's record says how many it compiled and how many it loaded ("triton_kernels").
# TINY=1 shrinks every size so the script itself can be checked on a CPU in a minute.
set -euo pipefail
phase=${1:?phase: all | steps | methods | drift | e2e-eager | e2e-fast | packing}
out=${OUT:-benchmarks/results/$(date +%F)-gpu}
mkdir -p "$out"
log="$out/$phase.log"
jsonl="$out/$phase.jsonl"
if [[ -s "$jsonl" ]]; then  # an earlier call's figures (the same day's default folder): never overwritten
  echo "gpu_session.sh: $jsonl already holds $(wc -l <"$jsonl") line(s) from an earlier call; move it away or set" \
       "OUT to another folder (a second call reads the first's file through ALL_REST_OF)" >&2
  exit 2
fi
: >"$jsonl"
export PYTHONUNBUFFERED=1
# installed (not merely importable from here): the plugins are found through the package's entry points
python3 -c 'import importlib.metadata as m; m.distribution("nas-harness")' 2>/dev/null ||
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null
python3 - <<'EOF' 2>&1 | tee -a "$log"
import platform, torch
dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
print(f"device {dev}; torch {torch.__version__}; python {platform.python_version()}")
EOF

if [[ -z "${TINY:-}" && -f .carry/triton-cache/manifest.json && -z "${TRITON_CACHE_DIR:-}" ]]; then
  cache="${TMPDIR:-/tmp}/nas-harness-triton-cache"
  python3 benchmarks/triton_cache.py --install .carry/triton-cache "$cache" 2>&1 | tee -a "$log" || true  # never stops the call
  if [[ -f "$cache/manifest.json" ]]; then export TRITON_CACHE_DIR="$cache"; fi
fi

if [[ -n "${TINY:-}" ]]; then
  size=(--batch 4 --channels 4 --layers 3 --resolution 16); long=2; short=1; warm=1
  e2e=(--preset smoke --set search.epochs=1 --set search.max_train_images=256)
  e2e_data=(--dataset digits)  # TINY runs anywhere: no carried data needed
else
  size=(); long=50; short=30; warm=5
  e2e=(--preset quick)
  e2e_data=(--dataset fashion-mnist --data-dir .carry)
fi

step() {  # step METHOD SPACE STEPS [extra args]: one --compare measurement, appended as one JSON line
  local m=$1 s=$2 n=$3; shift 3
  local j="$out/.tmp.json"
  python3 benchmarks/search_step.py --method "$m" --space "$s" "${size[@]}" --steps "$n" --warmup "$warm" \
    --compare --json "$j" "$@" 2>&1 | grep -v '^{' | tee -a "$log"
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$j" >>"$jsonl"
  rm -f "$j"
}

e2e_run() {  # e2e_run LABEL [--set ...]: one search + a 1-epoch retrain, its own store (runtime settings
  local label=$1; shift   # are not part of a run's identity, so one store would skip the second run)
  local store="$out/.e2e-$label.sqlite"
  rm -f "$store"
  local pin=()
  if [[ "${*: -1}" == --taskset ]]; then pin=(taskset -c 0); set -- "${@:1:$#-1}"; fi
  "${pin[@]}" python3 -m harness.cli run --plugin darts --space nb201 \
    "${e2e_data[@]}" --seeds 0 --store "$store" --device auto "${e2e[@]}" \
    --set eval.epochs=1 --set eval.max_train_images=2000 "$@" 2>&1 | tee -a "$log"  # the figure is the search
  python3 - "$store" "$label" >>"$jsonl" <<'EOF'
import json, sys
from harness.store import ResultStore
(rec,) = ResultStore(sys.argv[1]).records(None)
print(json.dumps({"label": sys.argv[2], "status": rec.status, "error": rec.error, "device": rec.device,
                  "search_s": rec.costs.get("search_s"), "wall_s": rec.costs.get("wall_s"),
                  "steps": rec.search.get("steps"), "runtime": rec.search.get("runtime"),
                  "genotype": rec.genotype, "command": rec.command}))
EOF
}

case "$phase" in
  all)
    # one worker process for every step measurement (torch imported once), watched by gpu_all.py: a new one
    # takes the items after one that kills or hangs it; the two e2e searches as subprocesses
    python3 benchmarks/gpu_all.py --out "$out" --budget "${ALL_BUDGET_S:-510}" ${TINY:+--tiny} \
      ${ALL_ONLY:+--only "$ALL_ONLY"} ${ALL_REST_OF:+--rest-of "$ALL_REST_OF"} 2>&1 |
      tee -a "$log" ;;
  steps)
    step darts darts "$long" --drift-baseline --sync-check
    step darts nb201 "$long" --drift-baseline --sync-check
    for s in s1 s2 s3 s4; do step darts "$s" "$short"; done ;;
  methods)
    for m in gdas rome-v2 entrannas entrannas-dst rome-v1; do  # issue 17: own fused / device-chosen paths
      step "$m" darts 20 --drift-baseline --sync-check
    done
    step rome-v2 darts 20 --drift-baseline --set optimizer.group_ops=chosen  # reads the host: no sync check
    step entrannas darts 20 --drift-baseline --sync-check --set cell.transit_on_device=true
    for m in darts-2nd single-darts darts-pt-fixed-alpha; do
      step "$m" darts 20
    done ;;
  drift)
    for s in darts nb201; do
      step darts "$s" "$long" --drift-baseline --data fashion-mnist --data-dir .carry
    done ;;
  e2e-eager) e2e_run eager --set runtime.fast=false --set runtime.cuda_graph=false ;;
  e2e-fast)
    e2e_run fast --set runtime.cuda_graph=false
    e2e_run graph --set runtime.cuda_graph=true
    # the data never starves the GPU: batches are gathered and augmented on the device, so one CPU core
    # should give the same search time
    if command -v taskset >/dev/null; then
      e2e_run graph-1cpu --set runtime.cuda_graph=true --taskset
    fi ;;
  packing)
    # quick DARTS searches on nb201 (1 epoch of 78 steps): alone, then 4 and 8 at once on the one GPU
    if [[ -n "${TINY:-}" ]]; then
      python3 benchmarks/gpu_packing.py --out "$jsonl" --packs 1,2 --device cpu --tiny 2>&1 | tee -a "$log"
    else
      python3 benchmarks/gpu_packing.py --out "$jsonl" --packs 1,4,8 --device cuda 2>&1 | tee -a "$log"
    fi ;;
  *) echo "unknown phase $phase (all | steps | methods | drift | e2e-eager | e2e-fast | packing)" >&2; exit 2 ;;
esac
echo "done: $jsonl" | tee -a "$log"
