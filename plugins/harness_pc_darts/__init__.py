"""PC-DARTS (Xu et al., ICLR 2020) for nas-harness: partial channel connections and edge normalisation."""
