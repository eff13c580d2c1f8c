"""Time one search step (arch step + weight step) of a method on a space, at the paper's search
setting by default (batch 64, C=16, 8 layers for the DARTS spaces; C=16, N=5 for nb201), on random
32x32 RGB data resident on the device. Prints ms per step, images per second and peak memory, with
the command, device and versions.

    python benchmarks/search_step.py --method darts --space darts
    python benchmarks/search_step.py --method darts --space nb201 --steps 30
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True)
    ap.add_argument("--space", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, help="default: 8 (DARTS spaces) / 5 (nb201)")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="COMPONENT.KEY=VALUE",
                    help="override a component setting, as `harness run --set`")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--sync-check", action="store_true",
                    help="run one extra step under torch.cuda.set_sync_debug_mode('error'): fails on any "
                         "host-device synchronisation inside the step")
    args = ap.parse_args(argv)

    import torch

    from harness.api import Batch
    from harness.config import parse_sets, resolve
    from harness.plugins import load_registry
    from harness.runner import device_name, resolve_device
    from harness.spaces import NetShape

    registry = load_registry()
    device = resolve_device(args.device)
    method = registry.method(args.method)
    space = registry.space(args.space)
    layers = args.layers or (5 if space.family == "nb201" else 8)
    spec = resolve(registry, method, args.space, "cifar10", 0, "paper", {}, parse_sets(args.sets))
    comp = {k: registry.component(k, n) for k, n in spec.components.items()}
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    shape = NetShape(3, args.classes, args.resolution)
    sampler = comp["sampler"].factory(spec.hparams["sampler"], space=space)
    cell = comp["cell"].factory(spec.hparams["cell"])
    net = space.build_search_network(sampler, cell, args.channels, layers, shape).to(device)
    opt = comp["optimizer"].factory(spec.hparams["optimizer"], net=net, steps_per_epoch=100, epochs=50)
    opt.set_progress(0, 50)
    sampler.set_progress(0, 50)
    net.train()

    def data():
        return Batch(torch.randn(args.batch, 3, args.resolution, args.resolution, device=device),
                     torch.randint(0, args.classes, (args.batch,), device=device))

    pool = [(data(), data()) for _ in range(4)]  # rotate inputs, never zeros

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(args.warmup):
        opt.step(net, *pool[i % 4])
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        opt.step(net, *pool[i % 4])
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    ms = statistics.median(times)
    syncs = "not checked"
    if args.sync_check and device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            opt.step(net, *pool[0])
            syncs = "none"
        except RuntimeError as exc:
            syncs = f"sync found: {str(exc).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "method": args.method, "space": args.space, "sets": args.sets, "batch": args.batch, "channels": args.channels,
        "layers": layers, "device": device_name(device), "torch": torch.__version__,
        "python": platform.python_version(), "ms_per_step_median": round(ms, 2),
        "ms_per_step_min": round(min(times), 2), "images_per_s": round(args.batch / ms * 1000, 1),
        "peak_mem_gib": round(peak, 3), "steps": args.steps, "host_syncs_in_step": syncs,
    }
    print(json.dumps(result))
    print(f"{args.method} on {args.space}: {ms:.1f} ms/step (median of {args.steps}), "
          f"{result['images_per_s']} img/s, peak {peak:.2f} GiB, host syncs: {syncs}  "
          f"[{result['device']}, torch {torch.__version__}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
