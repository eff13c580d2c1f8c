#!/usr/bin/env bash
# Top-level aten calls per step of every step the H200 timed uncaptured on 2026-12-04
# (benchmarks/results/2026-12-04-gpu/combined.jsonl), with the settings each ran with that day.
# Run from the repository root: bash benchmarks/results/2026-12-04-host-calls/run.sh
set -euo pipefail
d=benchmarks/results/2026-12-04-host-calls
one() {  # one NAME METHOD SPACE MODE [--set ...]
  local name=$1 m=$2 s=$3 mode=$4; shift 4
  [[ -f "$d/$name.json" ]] && return  # taken already (a re-run continues where one stopped)
  python benchmarks/host_calls.py --method "$m" --space "$s" --mode "$mode" --json "$d/$name.json" "$@" 2>/dev/null
}
one darts-darts-eager darts darts eager
one darts-darts-fast darts darts fast
one darts-nb201-eager darts nb201 eager
one darts-nb201-fast darts nb201 fast
one gdas-eager gdas darts eager
one gdas-fast-allop gdas darts fast --set cell.fused=always
one gdas-fast-chosen gdas darts fast --set cell.fused=never
one rome-v2-eager rome-v2 darts eager
one rome-v2-fast-allop rome-v2 darts fast --set optimizer.group_ops=all
one rome-v2-fast-chosen rome-v2 darts fast --set optimizer.group_ops=chosen
one rome-v1-eager rome-v1 darts eager
one rome-v1-fast-allop rome-v1 darts fast --set optimizer.group_ops=all
one entrannas-eager entrannas darts eager
one entrannas-fast entrannas darts fast --set cell.transit_on_device=false
one entrannas-device-eager entrannas darts eager --set cell.transit_on_device=true
one entrannas-device-fast entrannas darts fast --set cell.transit_on_device=true
one entrannas-dst-eager entrannas-dst darts eager
one entrannas-dst-fast entrannas-dst darts fast --set cell.transit_on_device=false
one darts-2nd-eager darts-2nd darts eager
one darts-2nd-fast darts-2nd darts fast
one single-darts-eager single-darts darts eager
one single-darts-fast single-darts darts fast
one darts-pt-fixed-alpha-eager darts-pt-fixed-alpha darts eager
one darts-pt-fixed-alpha-fast darts-pt-fixed-alpha darts fast
