"""EnTranNAS and EnTranNAS-DST (Yang et al., CVPR 2021): Engine/Transit cells with feature sharing and
a channel bottleneck, a tempered-softmax sampler, and differentiable sparsification (DST) with a
keep-non-zero selector. Choices are documented in :mod:`harness_entrannas.components`."""
