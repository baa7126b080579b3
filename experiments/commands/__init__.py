"""The ``latentdream`` commands: the CLI, the analyses added to earlier runs, the runs table and comparisons, the
model registry and the demo."""
