"""``latentdream demo``: every capability once, on data that ships with the installed packages.

1. The reference CNN (SGD) on the 5,000 bundled MNIST digits: OIPs of every conv layer after every epoch (cheap
   renders during training, a fuller one at the end, so the UI's image slider steps through training), deep dreams
   on scikit-learn's flower photo at the end.
2. The same CNN with Adam, OIPs at the end.
3. Autoencoder case I on the digits padded to 32×32: the latent analysis after every epoch (histograms and summary
   metrics), the full analysis at the end.
4. A comparison run of the two CNNs (overlaid curves, OIPs map by map).
5. A small sweep: 2 learning rates × 2 seeds of the CNN, nested under a parent run with the seed statistics.

All in the local store, each run with its ``report.html``; it prints one line per phase with its wall time and the
CPU time of the process and its children (``user+sys``), so a slow phase shows, and the links to open in the MLflow
UI. The bound is 2 minutes on 2 idle CPU cores; :data:`BUDGET_S` gives each phase its share (CPU seconds, with
headroom for the analyses other parts add) and a phase over its share says so.
Then it checks its own runs (:func:`report_health`): a run whose health verdict is not ``ok`` gives one line
and exit 1.
"""

from __future__ import annotations

import resource
import time

from collections.abc import Mapping

from analysis import tracking
from experiments.run import store
from experiments.mlflow_ui import views
from experiments.run.config import load_experiment
from experiments.run.train import train

CNN_EPOCHS = 3  # 96 % validation accuracy on the bundled digits; the OIP slider steps over the 3 epochs
AE_EPOCHS = 4  # val/loss about 0.005, a latent space with structure (the mean-image MSE is 0.051)
# The OIP renders dominate the demo's time (all 224 maps of three layers, each ascent step a batch): the final render
# takes half the default 150 steps, still recognisable; during training the SGD run renders 15 steps after each epoch
# (the UI's image slider steps through training), the Adam run only at the end (the comparison needs its grids).
OIP_FINAL = "oip.steps=75"
OIP_EVERY_EPOCH = ["oip.every_n_epochs=1", "oip.epoch_steps=15"]
# (label, experiment, overrides): short but real trainings, enough for recognisable OIPs and a structured latent space.
DEMO_RUNS: list[tuple[str, str, list[str]]] = [
    ("cnn_sgd", "cnn_mnist_bundled", [f"trainer.max_epochs={CNN_EPOCHS}", *OIP_EVERY_EPOCH, OIP_FINAL,
                                      "tracking.run_name=cnn-sgd"]),
    ("cnn_adam", "cnn_mnist_bundled", [f"trainer.max_epochs={CNN_EPOCHS}", "optim.name=adam", "optim.lr=0.001",
                                       OIP_FINAL, "dream.enabled=false", "tracking.run_name=cnn-adam"]),
    ("ae_case1", "ae_case1_mnist_bundled", [f"trainer.max_epochs={AE_EPOCHS}", "analysis.every_n_epochs=1",
                                            "tracking.run_name=ae-case1"]),
]
# The sweep's children are tiny: what it shows is the nesting, the grouping by point and the statistics over seeds.
# Both rates learn in their 40 batches (val/acc 0.58-0.78); at 0.01 the children stayed near chance (val/acc 0.19),
# too few epochs for the health verdict's not_learning rule to judge them.
SWEEP = ["optim.lr=0.05,0.1", "trainer.seed=1,2", "trainer.max_epochs=2", "trainer.limit_train_batches=20",
         "oip.enabled=false", "dream.enabled=false", "tracking.system_metrics=false", "tracking.log_model=false"]
SUMMARY_METRICS = ("val/loss", "val/acc", "test/acc")
UI = "http://127.0.0.1:5000"


# CPU seconds (user+sys, this process and its children) each phase may take, measured on 2 idle cores with about 10 %
# headroom, so that the demo stays under 2 minutes of wall time; a phase over its share says so. The sweep's children
# train in Ray's worker processes, which are not this process's children: its CPU counts only the driver, so its
# share is in wall seconds.
BUDGET_S = {"train cnn_sgd": 50.0, "train cnn_adam": 22.0, "train ae_case1": 45.0, "compare cnn_sgd vs cnn_adam": 13.0}
WALL_BUDGET_S = {"sweep": 30.0}


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (a sweep's processes), in seconds."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _phase(label: str, start: tuple[float, float], detail: str) -> None:
    wall, cpu = time.perf_counter() - start[0], cpu_seconds() - start[1]
    budget, wall_budget = BUDGET_S.get(label), WALL_BUDGET_S.get(label)
    over = (f"  (over its budget of {budget:.0f} s CPU)" if budget is not None and cpu > budget else
            f"  (over its budget of {wall_budget:.0f} s wall)" if wall_budget is not None and wall > wall_budget else "")
    print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU, {detail}{over}", flush=True)


def _now() -> tuple[float, float]:
    return time.perf_counter(), cpu_seconds()


def run_demo(overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Train the demo runs, compare the two CNNs and run the small sweep; returns label → run id."""
    from experiments.commands.runs import compare_runs
    from experiments.sweeps.sweep import run_sweep

    run_ids, experiments, began = {}, {}, _now()
    for label, name, demo_overrides in DEMO_RUNS:
        cfg = load_experiment(name, [*demo_overrides, *overrides])
        print(f"train {label}: latentdream train {name} {' '.join(demo_overrides)}", flush=True)
        start = _now()
        result = train(cfg, command=f"latentdream demo ({label})")
        run_ids[label], experiments[label] = result.run_id, result.experiment_id
        shown = ", ".join(f"{k} {result.metrics[k]:.3f}" for k in SUMMARY_METRICS if k in result.metrics)
        _phase(f"train {label}", start, f"{shown} (run {result.run_id})")

    start = _now()
    run_ids["comparison"] = compare_runs([run_ids["cnn_sgd"], run_ids["cnn_adam"]])
    _phase("compare cnn_sgd vs cnn_adam", start, f"run {run_ids['comparison']}")

    print(f"sweep: latentdream sweep cnn_mnist_bundled {' '.join(SWEEP)} --parallel 2", flush=True)
    start = _now()
    run_ids["sweep"] = run_sweep("cnn_mnist_bundled", [*SWEEP, *overrides], parallel=2,
                                 command="latentdream demo (sweep)")
    _phase("sweep", start, f"parent run {run_ids['sweep']} (sweep/summary.csv, sweep/*.png)")

    print(f"\ndemo: {time.perf_counter() - began[0]:.0f} s wall, {cpu_seconds() - began[1]:.0f} s CPU in all; runs in "
          f"{store.default_tracking_uri()}")
    print("Open the MLflow UI:  .venv/bin/latentdream ui   (or: make ui), then:")
    print(f"  the CNN runs' curves and OIPs:  {views.experiment_url(UI, experiments['cnn_sgd'])}")
    print(f"  the autoencoder's latent space: {views.experiment_url(UI, experiments['ae_case1'])}")
    print(f"  one run's images over epochs:   {views.run_url(UI, experiments['cnn_sgd'], run_ids['cnn_sgd'])}")
    print(f"  a run's report (curves, every figure and table): "
          f"{views.run_url(UI, experiments['cnn_sgd'], run_ids['cnn_sgd'], tab='artifacts/report.html')}")
    return run_ids


def unhealthy_runs(run_ids: Mapping[str, str], tracking_uri: str | None = None) -> dict[str, str]:
    """``"<label> (run <id>)"`` → health verdict of every demo run, and every child of the sweep, whose tag
    ``health`` is neither ``ok`` nor missing (the comparison and the sweep's parent train nothing)."""
    from experiments.sweeps.sweep import children

    _, client = store.client_for(tracking_uri)
    runs = [(label, client.get_run(run_id)) for label, run_id in run_ids.items()]
    if "sweep" in run_ids:
        runs += [(f"sweep child {r.data.tags.get('mlflow.runName', '')}".rstrip(), r)
                 for r in children(client, dict(runs)["sweep"])]
    verdicts = {f"{label} (run {run.info.run_id})": run.data.tags.get(tracking.TAG_HEALTH) for label, run in runs}
    return {name: v for name, v in verdicts.items() if v not in (None, tracking.HEALTH_OK)}


def report_health(run_ids: Mapping[str, str], tracking_uri: str | None = None) -> int:
    """Print one line per unhealthy demo run (:func:`unhealthy_runs`); the demo's exit code: 1 if any, else 0."""
    bad = unhealthy_runs(run_ids, tracking_uri)
    for name, verdict in bad.items():
        print(f"latentdream: error: demo run {name} is unhealthy: {verdict}", flush=True)
    return 1 if bad else 0
