"""An example third-party nas-harness plugin."""

__version__ = "0.1.0"
