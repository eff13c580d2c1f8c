#!/usr/bin/env bash
# Triton's interpreter without its int32 overflow arithmetic (2026-12-05, eighth session): the tests that run
# the kernels in the interpreter and `TINY=1 gpu_session.sh all`, before (5c77eb6) and after (4454211), each in
# a worktree of its commit on this 2-core machine, one after the other. SUITE=1 also times the whole suite
# (README's command) at both. Run from this folder.
set -uo pipefail
ROOT=$(cd ../../.. && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
export PATH="$(dirname "$PY"):$PATH" OMP_NUM_THREADS=1
T=$(mktemp -d)
for label in before:5c77eb6 after:4454211; do
  name=${label%%:*} rev=${label#*:}
  git -C "$ROOT" worktree add -q --detach "$T/$name" "$rev"
  (cd "$T/$name" && export PYTHONPATH="$T/$name" &&
    { /usr/bin/time -f "%U s user, %S s system, %e s wall" "$PY" -m pytest -q -p no:cacheprovider -n 0 \
        tests/test_dwconv.py tests/test_bntriton.py tests/test_slots.py tests/test_graphs.py 2>&1 | tail -2; } \
      > "$OLDPWD/interpreter-tests-$name.log" 2>&1
    mkdir -p "$T/tiny-$name"
    { /usr/bin/time -f "%U s user, %S s system, %e s wall" env TINY=1 OUT="$T/tiny-$name" \
        bash benchmarks/gpu_session.sh all >/dev/null; } > "$OLDPWD/tiny-all-$name.log" 2>&1
    "$PY" -c 'import json,sys; [print(r["item"], r.get("item_s")) for r in map(json.loads, open(sys.argv[1]))]' \
      "$T/tiny-$name/all.jsonl" >> "$OLDPWD/tiny-all-$name.log"
    if [[ -n "${SUITE:-}" ]]; then
      { time "$PY" -m pytest -q -p no:cacheprovider --durations=0 ; } > "$OLDPWD/suite-$name.log" 2>&1
    fi)
  git -C "$ROOT" worktree remove --force "$T/$name"
done
rm -rf "$T"
