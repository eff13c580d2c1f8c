"""beta-DARTS (Ye et al., CVPR 2022) for nas-harness: DARTS with the beta-decay regularisation of the
architecture parameters."""
