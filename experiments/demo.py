"""``latentdream demo``: every capability once, on data that ships with the installed packages.

Trains the reference CNN on the 5,000 bundled MNIST digits (its OIPs and deep dreams are logged into the run)
and autoencoder case I on the same digits padded to 32×32 (its latent space is analysed into the run), all into
the local store, then says how to open the UI. A few minutes on 2 CPU cores.
"""

from __future__ import annotations

from analysis import tracking
from experiments.config import load_experiment
from experiments.train import train

# Short but real: enough epochs for recognisable OIPs and a structured latent space.
DEMO_RUNS: dict[str, list[str]] = {
    "cnn_mnist_bundled": ["trainer.max_epochs=4"],
    "ae_case1_mnist_bundled": ["trainer.max_epochs=4"],
}


def run_demo(overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Train the demo experiments; returns their run ids."""
    run_ids = []
    for name, demo_overrides in DEMO_RUNS.items():
        cfg = load_experiment(name, [*demo_overrides, *overrides])
        print(f"\n=== {name}")
        result = train(cfg, command=f"latentdream demo ({name})")
        run_ids.append(result.run_id)
        print(f"run {result.run_id}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())))
    print("\nDemo runs (local store " + tracking.default_tracking_uri() + "):")
    for name, run_id in zip(DEMO_RUNS, run_ids):
        print(f"  {name:<26} {run_id}")
    print("\nOpen the MLflow UI with:   .venv/bin/latentdream ui      then browse http://127.0.0.1:5000")
    return run_ids
