"""An example third-party nas-harness plugin built from the public contract only (harness.api,
harness.blocks, harness.spaces, harness.data): no other plugin is imported and the core is not touched."""

__version__ = "0.1.0"
