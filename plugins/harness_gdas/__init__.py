"""GDAS (Dong & Yang, CVPR 2019) as a harness plugin: Gumbel hard one-hot sampler with a
temperature annealed 10 -> 0.1, single-path cell (only the sampled op runs)."""

__version__ = "0.1.0"
