"""How far each float32 implementation of a method's search step strays from the same step in float64.

`search_step.py --drift-baseline` compares fast with eager, and eager with eager on weights moved by one
ulp: a good yardstick while trajectories are smooth, a noisy one once a discrete event (a flipped Gumbel
argmax, a ReLU input crossing zero) makes two float32 runs jump apart. This script measures each mode
against the float64 run of the eager step instead (the same network, initialised in float32 and then
converted, the same batches and random streams): eager float32's distance from it is the rounding error
of the straightforward implementation, and a fast path is "the same math" when its distance is of that
size. Per step: the loss's relative error, and over the parameters (weights and architecture) the largest
per-tensor relative error max|p32 - p64| / max|p64|.

    python benchmarks/drift_vs_float64.py --method rome-v2 --space darts --steps 6
    python benchmarks/drift_vs_float64.py --method rome-v2 --space darts --modes eager fast fast:optimizer.group_samples=false

A mode is ``eager``, ``fast`` or ``fast:COMPONENT.KEY=VALUE[,...]`` (the fast path with settings changed).
``--dtype float64`` runs the modes in float64 too: a mode that is the same math as the eager step stays
within float64 rounding of it over every step, discrete choices included.
Default sizes are tiny (batch 4, C=4, 3 cells, 16x16 random inputs): float64 on a CPU is slow.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts beside this one
import search_step  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    search_step.step_arguments(ap, space="darts", batch=4, channels=4, layers=3, resolution=16)  # toy sizes
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0, help="the random stream of the steps (noise, Gumbel draws)")
    ap.add_argument("--modes", nargs="+", default=["eager", "fast"])
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="the modes' precision; float64: whether a mode is the same math as the eager step, "
                         "discrete choices included (its distance then is float64 rounding, ~1e-15)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from harness.api import Batch
    from harness.config import parse_sets, resolve
    from harness.plugins import load_registry
    from harness.runner import device_name
    from harness.spaces import NetShape

    registry = load_registry()
    device = torch.device(args.device)
    method = registry.method(args.method)
    shape = NetShape(3, args.classes, args.resolution)

    def build(mode: str, dtype):
        fast, _, sets = mode.partition(":")
        if fast not in ("eager", "fast"):
            raise SystemExit(f"mode {mode!r}: eager, fast or fast:COMPONENT.KEY=VALUE[,...]")
        spec = resolve(registry, method, args.space, "cifar10", 0, "paper", {},
                       parse_sets(sets.split(",")) if sets else [])
        space = registry.space(args.space, spec.budget.search.op_set)
        # every mode and dtype starts from the same float32 initialisation; its steps run uncaptured, so a setting
        # resolved by that (ROME's group_ops=auto: on CUDA the chosen-op pass) resolves as in an uncaptured run
        sampler, _, net, opt = search_step.step_parts(registry, spec, space, args.channels, args.layers, shape,
                                                      device, dtype, captured=False)
        search_step.ready(sampler, net, opt, fast == "fast")
        return net, opt

    gen = torch.Generator().manual_seed(1234)
    pool = [tuple(Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen),
                        torch.randint(0, args.classes, (args.batch,), generator=gen)) for _ in range(2))
            for _ in range(4)]

    def trajectory(mode: str, dtype):
        net, opt = build(mode, dtype)
        torch.manual_seed(args.seed)
        losses, params = [], []
        for i in range(args.steps):
            train, val = (Batch(b.x.to(device, dtype), b.y.to(device)) for b in pool[i % len(pool)])
            losses.append(float(opt.step(net, train, val).train_loss))
            params.append({n: p.detach().to("cpu", torch.float64).clone() for n, p in net.named_parameters()})
        return losses, params

    ref_losses, ref_params = trajectory("eager", torch.float64)
    results = {}
    for mode in args.modes:
        losses, params = trajectory(mode, getattr(torch, args.dtype))
        loss_err = [abs(a - b) / max(abs(b), 1e-30) for a, b in zip(losses, ref_losses)]
        param_err, worst = [], []
        for p, r in zip(params, ref_params):
            errs = {n: float((p[n] - r[n]).abs().max() / r[n].abs().max().clamp_min(1e-30)) for n in r}
            name = max(errs, key=errs.get)
            param_err.append(errs[name])
            worst.append(name)
        results[mode] = {"loss_rel_err_per_step": [float(f"{v:.3g}") for v in loss_err],
                         "param_max_rel_err_per_step": [float(f"{v:.3g}") for v in param_err],
                         "worst_param_per_step": worst}
        print(f"{args.method} on {args.space} [{mode}, {args.dtype}] vs float64 eager, per step: loss "
              + " ".join(f"{v:.1e}" for v in loss_err) + "; parameters " + " ".join(f"{v:.1e}" for v in param_err)
              + f" (last worst: {worst[-1]})")
    out = {"command": "python benchmarks/drift_vs_float64.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "method": args.method, "space": args.space, "batch": args.batch, "channels": args.channels,
           "layers": args.layers, "steps": args.steps, "seed": args.seed, "dtype": args.dtype,
           "device": device_name(device),
           "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "modes": results}
    return search_step.write_json(out, args.json)


if __name__ == "__main__":
    main()
