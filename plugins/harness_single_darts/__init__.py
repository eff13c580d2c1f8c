"""Single-DARTS (Hou et al., "Single-DARTS: Towards Stable Architecture Search"): sigmoid architecture
weights trained single-level, on the same training batch as the network weights."""
