"""SDARTS (Chen and Hsieh, ICML 2020) for nas-harness: DARTS whose weight step sees perturbed architecture
weights, randomly (SDARTS-RS) or adversarially (SDARTS-ADV)."""
