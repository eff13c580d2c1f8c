"""DrNAS (Chen, Wang, Cheng, Tang, Hsieh; ICLR 2021) for nas-harness: Dirichlet architecture distributions
with pathwise gradients and the progressive partial-channel search."""
