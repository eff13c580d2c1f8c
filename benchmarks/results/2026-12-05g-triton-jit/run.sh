#!/usr/bin/env bash
# Triton's JIT path on a CPU (2026-12-05, seventh session): every Triton form a GPU call launches compiled as the GPU
# compiles it (benchmarks/triton_cache.py, a stand-in driver reporting sm_90), under the GPU image's Triton 3.6 /
# Python 3.12 (PY36: the venv of ../2026-12-05-triton36/run.sh) and this machine's 3.8 (PY38); the cache installed
# elsewhere and every form read back from it; the exemption before this session's fix, failing. Run from this folder.
set -uo pipefail
PY36=${PY36:-/tmp/v212/bin/python}
ROOT=$(cd ../../.. && pwd)
PY38=${PY38:-$ROOT/.venv/bin/python}
T=$(mktemp -d)
(cd "$ROOT" && $PY36 benchmarks/triton_cache.py --out "$T/built") > build-triton36.log 2>&1
(cd "$ROOT" && $PY36 benchmarks/triton_cache.py --install "$T/built" "$T/installed") > install-triton36.log 2>&1
(cd "$ROOT" && $PY36 benchmarks/triton_cache.py --out "$T/installed" --keep) > keep-triton36.log 2>&1
cp "$T/built/manifest.json" manifest-triton36.json
(cd "$ROOT" && $PY38 benchmarks/triton_cache.py --out "$T/built38") > build-triton38.log 2>&1
# the exemption as it was (every name in _SIZES, constexprs included), in a worktree of this commit
git -C "$ROOT" worktree add -q --detach "$T/old" HEAD
sed -i 's/do_not_specialize=runtime_sizes(fn, sizes)/do_not_specialize=[a for a in fn.__code__.co_varnames[:fn.__code__.co_argcount] if a in sizes]/' \
    "$T/old/harness/nn/dwconv.py"
for py in PY36 PY38; do
  (cd "$T/old" && PYTHONPATH="$T/old" ${!py} benchmarks/triton_cache.py --tiny --limit 1 --parts "darts dw,darts bn" \
      --out "$T/old-cache") 2>&1 | tail -4 > "old-exemption-${py,,}.log"
done
git -C "$ROOT" worktree remove --force "$T/old"
rm -rf "$T"
