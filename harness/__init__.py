"""nas-harness: a benchmark harness for differentiable neural architecture search.

The core defines the plugin contract (``harness.hookspecs``), the search spaces, one search loop,
evaluation by benchmark query or retraining, a SQLite results store and leaderboards. Every method
is a plugin found through the ``harness`` entry-point group.
"""

__version__ = "0.1.0"
