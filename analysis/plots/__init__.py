"""Plotting: arrays in, ``matplotlib.figure.Figure`` out. No files, no MLflow, no Lightning."""

import matplotlib

matplotlib.use("Agg")  # figures are saved, never shown; the UI has no display
