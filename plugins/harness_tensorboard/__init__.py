"""TensorBoard tracker for nas-harness (``harness run --track tensorboard``; ``pip install 'nas-harness[tensorboard]'``)."""
