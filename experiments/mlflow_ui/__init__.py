"""The MLflow UI: the views latentdream publishes into each experiment, and the ``latentdream ui`` server."""
