"""A small NAS-Bench-201 file in the official format, built for the tests that read one (the benchmark
look-ups and the untrusted-file checks): three architectures with per-seed results whose hp-200 means are
the targets below and whose hp-12 numbers differ on purpose."""

from __future__ import annotations

import itertools
from pathlib import Path

from harness.genotypes import parse_nb201

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ARCH11 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
ARCH284 = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|"
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


# Seed-mean targets (SPEC-FACTS §5.3): per NB201 dataset, per eval set, the hp-200 mean; hp-12 numbers
# are different on purpose so that reading the library default hp would be caught.
HP200 = {
    0: {"cifar10-valid": {"x-valid": 81.9827, "ori-test": 81.52}, "cifar10": {"ori-test": 85.8633},
        "cifar100": {"x-valid": 52.70, "x-test": 52.9133, "ori-test": 52.81},
        "ImageNet16-120": {"x-valid": 28.2111, "x-test": 26.6333, "ori-test": 27.42}},
    11: {"cifar10-valid": {"x-valid": 87.94, "ori-test": 87.65}, "cifar10": {"ori-test": 91.5833},
         "cifar100": {"x-valid": 67.4533, "x-test": 67.6067, "ori-test": 67.53},
         "ImageNet16-120": {"x-valid": 30.4111, "x-test": 30.1667, "ori-test": 30.29}},
    284: {"cifar10-valid": {"x-valid": 86.0467, "ori-test": 85.6367}, "cifar10": {"ori-test": 88.79},
          "cifar100": {"x-valid": 61.68, "x-test": 62.14, "ori-test": 61.91},
          "ImageNet16-120": {"x-valid": 33.40, "x-test": 32.4667, "ori-test": 32.93}},
}
HP12 = {
    0: {"cifar10-valid": {"x-valid": 63.364, "ori-test": 63.24}, "cifar10": {"ori-test": 69.55},
        "cifar100": {"x-valid": 31.84, "x-test": 31.26, "ori-test": 31.55},
        "ImageNet16-120": {"x-valid": 18.4667, "x-test": 17.00, "ori-test": 17.73}},
    11: {"cifar10-valid": {"x-valid": 63.278, "ori-test": 63.51}, "cifar10": {"ori-test": 74.00},
         "cifar100": {"x-valid": 33.64, "x-test": 32.76, "ori-test": 33.20},
         "ImageNet16-120": {"x-valid": 15.6667, "x-test": 14.7333, "ori-test": 15.20}},
    284: {"cifar10-valid": {"x-valid": 72.876, "ori-test": 72.41}, "cifar10": {"ori-test": 79.46},
          "cifar100": {"x-valid": 40.48, "x-test": 39.44, "ori-test": 39.96},
          "ImageNet16-120": {"x-valid": 22.20, "x-test": 21.7333, "ori-test": 21.97}},
}
SEED_OFFSETS = (-1.5, 0.25, 1.25)  # per-seed deviations from the mean; they sum to 0
STRINGS = {0: ARCH0, 11: ARCH11, 284: ARCH284}
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _trial(dataset: str, seed: int, epochs: int, finals: dict[str, float], arch: str, index: int) -> dict:
    """The state dict of one ``nas_201_api.ResultsCount`` (one training run)."""
    def curve(final: float) -> list[float]:
        return [final * (0.4 + 0.6 * (e + 1) / epochs) for e in range(epochs)]

    eval_acc1es, eval_losses, eval_times = {}, {}, {}
    for name, final in finals.items():
        for e, acc in enumerate(curve(final)):
            eval_acc1es[f"{name}@{e}"] = acc
            eval_losses[f"{name}@{e}"] = 3.0 - acc / 50
            eval_times[f"{name}@{e}"] = 0.5
    train_final = min(99.9, max(finals.values()) + 5.0)
    return {
        "name": dataset, "net_state_dict": None,
        "train_acc1es": dict(enumerate(curve(train_final))), "train_acc5es": None,
        "train_losses": {e: 2.0 - e / epochs for e in range(epochs)},
        "train_times": {e: 10.0 for e in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10},
        "params": 0.1, "flop": 15.0, "seed": seed, "epochs": epochs, "latency": [0.01],
        "eval_names": list(finals), "eval_acc1es": eval_acc1es, "eval_times": eval_times,
        "eval_losses": eval_losses,
    }


def _arch_results(index: int, table: dict, seeds: dict[str, list[int]], epochs: int) -> dict:
    """The state dict of one ``nas_201_api.ArchResults`` (all runs of one arch under one hp)."""
    all_results, dataset_seed = {}, {}
    for dataset, means in table.items():
        dataset_seed[dataset] = sorted(seeds[dataset])
        for k, seed in enumerate(dataset_seed[dataset]):
            offset = SEED_OFFSETS[k] if len(dataset_seed[dataset]) == 3 else (-0.5, 0.5)[k]
            finals = {name: mean + offset for name, mean in means.items()}
            all_results[(dataset, seed)] = _trial(dataset, seed, epochs, finals, STRINGS[index], index)
    return {"arch_index": index, "arch_str": STRINGS[index], "all_results": all_results,
            "dataset_seed": dataset_seed, "clear_net_done": False}


def _meta_archs() -> list[str]:
    """All 15,625 strings, with the three real ones at their real indices (the rest in any order)."""
    fixed = set(STRINGS.values())
    rest = iter(s for s in (parse_nb201("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)).to_string()
                            for ops in itertools.product(OPS, repeat=6)) if s not in fixed)
    return [STRINGS[i] if i in STRINGS else next(rest) for i in range(5 ** 6)]


def write_official_file(folder: Path) -> Path:
    """A small NAS-Bench-201 file in the official format (nas_201_api's pickled dict) under ``folder``."""
    import torch

    import nas_201_api  # noqa: F401 - a hard dependency (pyproject): a broken install must fail, not skip
    seeds200 = {"cifar10-valid": [777, 888, 999], "cifar10": [777, 888, 999], "cifar100": [777, 888, 999],
                "ImageNet16-120": [777, 888, 999]}
    seeds200_two = dict(seeds200, cifar10=[777, 888])  # arch 11 was trained only twice on cifar10
    seeds12 = {"cifar10-valid": [111, 777], "cifar10": [111], "cifar100": [111], "ImageNet16-120": [111]}
    arch2infos = {}
    for index in STRINGS:
        arch2infos[index] = {
            "full": _arch_results(index, HP200[index], seeds200_two if index == 11 else seeds200, 200),
            "less": _arch_results(index, HP12[index], seeds12, 12),
        }
    data = {"meta_archs": _meta_archs(), "arch2infos": arch2infos, "evaluated_indexes": sorted(STRINGS)}
    path = folder / "NAS-Bench-201-mini.pth"
    torch.save(data, path)
    return path


