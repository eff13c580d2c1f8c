"""MLflow tracker for nas-harness (``harness run --track mlflow``; ``pip install 'nas-harness[mlflow]'``)."""
