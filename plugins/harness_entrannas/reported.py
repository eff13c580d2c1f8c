"""What the EnTranNAS paper reports, as published (issue 15).

Source: Yang, You, Li, Wang, Qian, Lin, "Towards Improving the Consistency, Efficiency, and Flexibility of
Differentiable Neural Architecture Search" (EnTranNAS / EnTranNAS-DST; seed paper 003,
/work/shared/papers/003_7165acf8a5794e42.txt), Table 6 (CIFAR-10, DARTS space) and Section 4.2 (protocol).

Scope notes:
- The paper reports only CIFAR-10 results on the DARTS space (S0). It gives no CIFAR-100, no RobustDARTS
  S1-S4 and no NAS-Bench-201 results, so there are no entries for those.
- Left out on purpose: the "EnTranNAS (12 operations) + cutout" row of Table 6 (2.22±0.05%, extended
  12-op space, not our 7-op DARTS space); ImageNet results (Tables 4 and 7, out of scope); Table 1
  (super-net vs child-net validation accuracy ablation), Table 2 (Kendall tau), Table 3 (memory/cost) and
  Table 5 (Pascal VOC segmentation) -- none is a search-space/dataset test metric of the kind recorded here.
- Baseline rows of Table 6 (DARTS, PC-DARTS, ...) are not recorded here.
"""

from harness.api import Reported

_PROTOCOL = (
    "DARTS S0 (standard 7-op space), search on CIFAR-10: 8-cell super-net C=16, 50 epochs, batch 512; "
    "best-validation architecture of 5 searches; evaluation: 20 cells C=36, 600 epochs, batch 96, SGD "
    "lr 0.025 cosine, wd 3e-4, cutout 16, 'drop out rate' 0.2, auxiliary head; mean±std of 5 independent "
    "training runs"
)

_NOTE = (
    "n=5 counts evaluation (re-training) runs of ONE architecture, the one with the best validation "
    "accuracy among 5 searches (Sec. 4.2); it is not a spread over searches."
)

REPORTED: dict[str, tuple[Reported, ...]] = {
    "entrannas": (
        Reported("darts", "cifar10", "test_error", 2.53,
                 "EnTranNAS (seed paper 003) Table 6, row 'EnTranNAS + cutout'",
                 std=0.06, n=5, aggregation="mean-std", protocol=_PROTOCOL,
                 note=_NOTE + " Params 3.45M, search cost 0.06 GPU-day (GTX 1080 Ti)."),
    ),
    "entrannas-dst": (
        Reported("darts", "cifar10", "test_error", 2.48,
                 "EnTranNAS (seed paper 003) Table 6, row 'EnTranNAS-DST + cutout'",
                 std=0.08, n=5, aggregation="mean-std", protocol=_PROTOCOL,
                 note=_NOTE + " Params 3.20M, search cost 0.10 GPU-day (GTX 1080 Ti). The paper does not "
                 "state the sparsity weight lambda used for this CIFAR-10 search."),
    ),
}
