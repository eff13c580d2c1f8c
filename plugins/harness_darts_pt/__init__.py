"""DARTS-PT (Wang et al., "Rethinking Architecture Selection in Differentiable NAS", ICLR 2021):
perturbation-based architecture selection with fine-tuning, and its fixed-alpha variant."""
