"""``latentdream demo``: every capability once, on data that ships with the installed packages.

1. The reference CNN (SGD) on the 5,000 bundled MNIST digits: OIPs of every conv layer after every epoch (cheaper
   renders during training, the full one at the end, so the UI's image slider steps through training), deep dreams
   on scikit-learn's flower photo at the end.
2. The same CNN with Adam, OIPs after every epoch too.
3. Autoencoder case I on the digits padded to 32×32: the latent analysis after every epoch (histograms and summary
   metrics), the full analysis at the end.
4. A comparison run of the two CNNs (overlaid curves, OIPs map by map).
5. A small sweep: 2 learning rates × 2 seeds of the CNN, nested under a parent run with the seed statistics.

All in the local store; it prints one line per phase with its time, and the links to open in the MLflow UI. Then it
checks its own runs (:func:`report_health`): a run whose health verdict is not ``ok`` gives one line and exit 1.
About 4 minutes on 2 idle CPU cores (README: the figure measured).
"""

from __future__ import annotations

import time

from collections.abc import Mapping

from analysis import tracking
from experiments.run import store
from experiments.mlflow_ui import views
from experiments.run.config import load_experiment
from experiments.run.train import train

EPOCHS = 4
OIP_EVERY_EPOCH = ["oip.every_n_epochs=1", "oip.epoch_steps=30"]  # 30 ascent steps per epoch, the full 150 at the end
# (label, experiment, overrides): short but real trainings, enough for recognisable OIPs and a structured latent space.
DEMO_RUNS: list[tuple[str, str, list[str]]] = [
    ("cnn_sgd", "cnn_mnist_bundled", [f"trainer.max_epochs={EPOCHS}", *OIP_EVERY_EPOCH, "tracking.run_name=cnn-sgd"]),
    ("cnn_adam", "cnn_mnist_bundled", [f"trainer.max_epochs={EPOCHS}", "optim.name=adam", "optim.lr=0.001",
                                       *OIP_EVERY_EPOCH, "dream.enabled=false", "tracking.run_name=cnn-adam"]),
    ("ae_case1", "ae_case1_mnist_bundled", [f"trainer.max_epochs={EPOCHS}", "analysis.every_n_epochs=1",
                                            "tracking.run_name=ae-case1"]),
]
# The sweep's children are tiny: what it shows is the nesting, the grouping by point and the statistics over seeds.
SWEEP = ["optim.lr=0.01,0.05", "trainer.seed=1,2", "trainer.max_epochs=2", "trainer.limit_train_batches=20",
         "oip.layers=[conv3]", "oip.steps=20", "oip.examples=0", "dream.enabled=false", "tracking.system_metrics=false"]
SUMMARY_METRICS = ("val/loss", "val/acc", "test/acc")
UI = "http://127.0.0.1:5000"


def _phase(label: str, start: float, detail: str) -> None:
    print(f"{label}: {time.perf_counter() - start:.1f} s, {detail}", flush=True)


def run_demo(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Train the demo runs, compare the two CNNs and run the small sweep; returns label → run id."""
    from experiments.commands.runs import compare_runs
    from experiments.sweeps.sweep import run_sweep

    run_ids, experiments, began = {}, {}, time.perf_counter()
    for label, name, demo_overrides in DEMO_RUNS:
        cfg = load_experiment(name, [*demo_overrides, *overrides])
        print(f"train {label}: latentdream train {name} {' '.join(demo_overrides)}", flush=True)
        start = time.perf_counter()
        result = train(cfg, command=f"latentdream demo ({label})")
        run_ids[label], experiments[label] = result.run_id, result.experiment_id
        shown = ", ".join(f"{k} {result.metrics[k]:.3f}" for k in SUMMARY_METRICS if k in result.metrics)
        _phase(f"train {label}", start, f"{shown} (run {result.run_id})")

    start = time.perf_counter()
    run_ids["comparison"] = compare_runs([run_ids["cnn_sgd"], run_ids["cnn_adam"]])
    _phase("compare cnn_sgd vs cnn_adam", start, f"run {run_ids['comparison']}")

    print(f"sweep: latentdream sweep cnn_mnist_bundled {' '.join(SWEEP)} --parallel 2", flush=True)
    start = time.perf_counter()
    run_ids["sweep"] = run_sweep("cnn_mnist_bundled", [*SWEEP, *overrides], parallel=2,
                                 command="latentdream demo (sweep)")
    _phase("sweep", start, f"parent run {run_ids['sweep']} (sweep/summary.csv, sweep/*.png)")

    print(f"\ndemo: {time.perf_counter() - began:.0f} s in all; runs in {store.default_tracking_uri()}")
    print("Open the MLflow UI:  .venv/bin/latentdream ui   (or: make ui), then:")
    print(f"  the CNN runs' curves and OIPs:  {views.experiment_url(UI, experiments['cnn_sgd'])}")
    print(f"  the autoencoder's latent space: {views.experiment_url(UI, experiments['ae_case1'])}")
    print(f"  one run's images over epochs:   {views.run_url(UI, experiments['cnn_sgd'], run_ids['cnn_sgd'])}")
    return run_ids


def unhealthy_runs(run_ids: Mapping[str, str], tracking_uri: str | None = None) -> dict[str, str]:
    """``"<label> (run <id>)"`` → health verdict of every demo run, and every child of the sweep, whose tag
    ``health`` is neither ``ok`` nor missing (the comparison and the sweep's parent train nothing)."""
    _, client = store.client_for(tracking_uri)
    runs = [(label, client.get_run(run_id)) for label, run_id in run_ids.items()]
    if "sweep" in run_ids:
        parent = runs[[label for label, _ in runs].index("sweep")][1]
        children = client.search_runs([parent.info.experiment_id],
                                      f"tags.`{tracking.TAG_PARENT_RUN}` = '{run_ids['sweep']}'")
        runs += [(f"sweep child {r.data.tags.get('mlflow.runName', '')}".rstrip(), r) for r in children]
    verdicts = {f"{label} (run {run.info.run_id})": run.data.tags.get(tracking.TAG_HEALTH) for label, run in runs}
    return {name: v for name, v in verdicts.items() if v not in (None, tracking.HEALTH_OK)}


def report_health(run_ids: Mapping[str, str], tracking_uri: str | None = None) -> int:
    """Print one line per unhealthy demo run (:func:`unhealthy_runs`); the demo's exit code: 1 if any, else 0."""
    bad = unhealthy_runs(run_ids, tracking_uri)
    for name, verdict in bad.items():
        print(f"latentdream: error: demo run {name} is unhealthy: {verdict}", flush=True)
    return 1 if bad else 0
