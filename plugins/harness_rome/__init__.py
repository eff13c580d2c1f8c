"""ROME (RObustifying Memory-Efficient NAS; Wang et al., seed paper 000) as a harness plugin:
topology disentangled from operations (pair-Gumbel topology ``rome-v1``, Gumbel-top2 topology
``rome-v2``), K-sample gradient accumulation (``rome-accumulate``), the most probable architecture
as the result (``rome-most-probable``), on GDAS's ``single-path`` cell. Methods ``rome-v1`` and
``rome-v2``. Details and the choices made where the paper is vague: ``harness_rome.components``."""

__version__ = "0.1.0"
