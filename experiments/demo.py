"""``latentdream demo``: every capability once, on data that ships with the installed packages.

Trains the reference CNN on the 5,000 bundled MNIST digits (its OIPs and deep dreams are logged into the run), a
second CNN with Adam instead of SGD, and autoencoder case I on the same digits padded to 32×32 (its latent space
is analysed into the run); then compares the two CNN runs in a comparison run, all in the local store, and says
how to open the UI. It prints one line per phase with its time.
"""

from __future__ import annotations

import time

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
SUMMARY_METRICS = ("val/loss", "val/acc", "test/acc")


def run_demo(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Train the demo runs and compare the two CNNs; returns label → run id."""
    from experiments.runs import compare_runs

    run_ids, began = {}, time.perf_counter()
    for label, name, demo_overrides in DEMO_RUNS:
        cfg = load_experiment(name, [*demo_overrides, *overrides])
        print(f"train {label}: {name} {' '.join(demo_overrides)}", flush=True)
        start = time.perf_counter()
        result = train(cfg, command=f"latentdream demo ({label})")
        run_ids[label] = result.run_id
        shown = ", ".join(f"{k} {result.metrics[k]:.3f}" for k in SUMMARY_METRICS if k in result.metrics)
        print(f"train {label}: {time.perf_counter() - start:.1f} s, {shown} (run {result.run_id})", flush=True)
    start = time.perf_counter()
    run_ids["comparison"] = compare_runs([run_ids["cnn_sgd"], run_ids["cnn_adam"]])
    print(f"compare cnn_sgd vs cnn_adam: {time.perf_counter() - start:.1f} s (run {run_ids['comparison']})")
    print(f"\ndemo: {time.perf_counter() - began:.0f} s in all; runs in {store.default_tracking_uri()}")
    print("Open the MLflow UI:  .venv/bin/latentdream ui   (or: make ui), then the URL it prints")
    return run_ids
