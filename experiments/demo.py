"""``latentdream demo``: every capability once, on data that ships with the installed packages.

Trains the reference CNN on the 5,000 bundled MNIST digits (its OIPs and deep dreams are logged into the run), a
second CNN with Adam instead of SGD, and autoencoder case I on the same digits padded to 32×32 (its latent space
is analysed into the run); then compares the two CNN runs in a comparison run, all in the local store, and says
how to open the UI. About a minute and a half on 2 idle CPU cores.
"""

from __future__ import annotations

from experiments import store
from experiments.config import load_experiment
from experiments.train import train

# (label, experiment, overrides): short but real trainings, enough for recognisable OIPs and a structured latent space.
DEMO_RUNS: list[tuple[str, str, list[str]]] = [
    ("cnn_sgd", "cnn_mnist_bundled", ["trainer.max_epochs=4", "tracking.run_name=cnn-sgd"]),
    ("cnn_adam", "cnn_mnist_bundled", ["trainer.max_epochs=4", "optim.name=adam", "optim.lr=0.001",
                                       "dream.enabled=false", "tracking.run_name=cnn-adam"]),
    ("ae_case1", "ae_case1_mnist_bundled", ["trainer.max_epochs=4", "tracking.run_name=ae-case1"]),
]


def run_demo(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Train the demo runs and compare the two CNNs; returns label → run id."""
    from experiments.runs import compare_runs

    run_ids = {}
    for label, name, demo_overrides in DEMO_RUNS:
        cfg = load_experiment(name, [*demo_overrides, *overrides])
        print(f"\n=== {label}: latentdream train {name} {' '.join(demo_overrides)}")
        result = train(cfg, command=f"latentdream demo ({label})")
        run_ids[label] = result.run_id
        print(f"run {result.run_id}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())))
    run_ids["comparison"] = compare_runs([run_ids["cnn_sgd"], run_ids["cnn_adam"]])
    print(f"\nDemo runs (store {store.default_tracking_uri()}):")
    for label, run_id in run_ids.items():
        print(f"  {label:<12} {run_id}")
    print("\nOpen the MLflow UI with:   make ui   (or .venv/bin/latentdream ui), then browse http://127.0.0.1:5000")
    print("More: latentdream runs | latentdream analyze|oip|dream RUN_ID | latentdream compare RUN_A RUN_B")
    return run_ids
