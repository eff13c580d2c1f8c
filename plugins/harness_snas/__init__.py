"""SNAS (Xie et al., ICLR 2019) for nas-harness: concrete (Gumbel-softmax) relaxed samples of every op per
edge with an annealed temperature, weights and architecture trained together on the training data."""
