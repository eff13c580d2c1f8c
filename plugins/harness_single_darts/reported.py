"""What the Single-DARTS paper reports, as published (issue 15).

Source: Hou et al., "Single-DARTS: Towards Stable Architecture Search" (seed paper 001,
/work/shared/papers/001_967a411a02b8691d.txt):

* Table 1 ("Comparison of different NAS algorithms on NAS-Bench-201"), row 'Single-DARTS': validation and
  test accuracy (%) on CIFAR-10, CIFAR-100 and ImageNet-16-120, each printed as mean with subscript ±0.
  Sec. 5.1.1: "We run each method 5 times and report the average results" (50 search epochs, batch 64).
* Table 3 ("Comparisons on CIFAR10 in DARTS space"), row 'Single-DARTS': 3.3M params, Top-1 97.54 (%),
  no std. The architecture was searched directly on ImageNet-1K and transferred to CIFAR-10 (Sec. 5.1.2).

Not recorded here (and why):

* RobustDARTS S1-S4 and DARTS-space CIFAR-100: the paper reports none.
* Table 2 / appendix Table 6: full-size ImageNet results (out of scope).
* Table 4 (single-level with softmax, 94.27±0.13 / 73.01±0.71 / 46.10±0.34) and Table 5 (lr / activation /
  optimizer ablations on NB201): ablation variants, not the method's headline rows. Their Single-DARTS
  default entries (sigmoid, SGD, lr 0.005: 94.36 / 73.51) repeat Table 1's test accuracies.
"""

from harness.api import Reported

_NB201_PROTOCOL = (
    "NAS-Bench-201 lookup; search 50 epochs, batch 64, weights SGD lr 0.005 cosine wd 3e-4 momentum 0.9, "
    "alpha Adam lr 3e-4 betas (0.5, 0.999); mean of 5 runs"
)
_NB201_NOTE = (
    "std printed as ±0 (all 5 runs found the same architecture). The paper does not state which dataset the "
    "search ran on."
)
_NB201_C10_NOTE = (
    _NB201_NOTE + " Follows the usual NB201 convention (its 'Optimal' row 91.61/94.37 matches it): CIFAR-10 "
    "validation = cifar10-valid (trained on train half), CIFAR-10 test = trained on train+valid; the paper "
    "itself does not say."
)
_T1 = "Single-DARTS (seed paper 001) Table 1, row 'Single-DARTS'"

REPORTED: dict[str, tuple[Reported, ...]] = {
    "single-darts": (
        # NAS-Bench-201, Table 1.
        Reported("nb201", "cifar10", "valid_accuracy", 91.55, _T1 + ", CIFAR-10 validation", std=0.0, n=5,
                 aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_C10_NOTE),
        Reported("nb201", "cifar10", "test_accuracy", 94.36, _T1 + ", CIFAR-10 test", std=0.0, n=5,
                 aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_C10_NOTE),
        Reported("nb201", "cifar100", "valid_accuracy", 73.49, _T1 + ", CIFAR-100 validation", std=0.0, n=5,
                 aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_NOTE),
        Reported("nb201", "cifar100", "test_accuracy", 73.51, _T1 + ", CIFAR-100 test", std=0.0, n=5,
                 aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_NOTE),
        Reported("nb201", "imagenet16-120", "valid_accuracy", 46.37, _T1 + ", ImageNet-16-120 validation",
                 std=0.0, n=5, aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_NOTE),
        Reported("nb201", "imagenet16-120", "test_accuracy", 46.34, _T1 + ", ImageNet-16-120 test",
                 std=0.0, n=5, aggregation="mean-std", protocol=_NB201_PROTOCOL, note=_NB201_NOTE),
        # DARTS space S0, Table 3.
        Reported("darts", "cifar10", "test_accuracy", 97.54,
                 "Single-DARTS (seed paper 001) Table 3, row 'Single-DARTS' (Top-1 %, 3.3M params)",
                 aggregation="single",
                 protocol="P-DARTS setting: 14 cells (not 20, to keep params under 3.5M), C=36, 600 epochs, "
                          "batch 128, SGD momentum 0.9 wd 3e-4, lr 0.025 cosine to 0, cutout 16, drop-path 0.3, "
                          "auxiliary weight 0.4",
                 note="searched directly on ImageNet-1K (DARTS space, sigmoid alpha init -ln 7), transferred "
                      "to CIFAR-10; one number, no std or run count given"),
    ),
}
