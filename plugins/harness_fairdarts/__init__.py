"""Fair DARTS (Chu et al., ECCV 2020) for nas-harness: independent sigmoid op weights, the zero-one loss and
threshold derivation."""
