"""One training run: its config (schema, loading, validation), the objects built from it, the MLflow store it
lives in (open, resume, end), the guards that keep it safe, and ``train`` itself."""
