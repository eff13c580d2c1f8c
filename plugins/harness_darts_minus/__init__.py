"""DARTS- (Chu et al., ICLR 2021) for nas-harness: DARTS with an auxiliary skip connection on every edge whose
weight decays to zero over the search."""
