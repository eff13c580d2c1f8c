"""DARTS (Liu et al., ICLR 2019) as a harness plugin: softmax sampler, mixed cell, first- and
second-order bilevel optimizers, magnitude-argmax selector, and the methods ``darts`` (1st order)
and ``darts-2nd`` (2nd order, unrolled)."""

__version__ = "0.1.0"
