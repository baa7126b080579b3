"""A sweep on a two-node Ray cluster against the same sweep on one node, all on 127.0.0.1 (issue 22's figure).

The nodes are real ``ray start`` processes (``tests/slow/ray_nodes.py``, as docs/scale.md starts one per machine) and
the store is a real PostgreSQL the children reach over TCP (``tests/slow/servers.py``): the setup of the cluster
tests, measured. Three clusters, one after the other, each running the same sweep (``--children`` runs of
``--batches`` training batches, at most as many at once as the cluster has CPUs):

* one node with 1 CPU: the children one at a time (the baseline);
* two nodes with 1 CPU each: two at a time, one per node (what adding a machine buys);
* one node with 2 CPUs: two at a time on one node (the same cores without a second raylet, to show what the second
  node itself costs).

Wall time is the sweep's, from ``run_sweep`` to its return (Ray's connection included, the cluster's start not).
CPU is the whole machine's (``psutil.cpu_times``: the sweep, Ray's daemons and workers, PostgreSQL) over that span:
on a 2-core machine two nodes share the two cores the children need. Needs PostgreSQL (``make test`` installs it).

    python benchmarks/sweep_nodes.py [--children 4] [--batches 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEAN = ["trainer.max_epochs=1", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "data.batch_size=64",
        "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false", "tracking.log_model=false",
        "tracking.system_metrics=false", "trainer.enable_progress_bar=false"]
CLUSTERS = {"1 node x 1 CPU": (0, 1), "2 nodes x 1 CPU": (1, 1), "1 node x 2 CPUs": (0, 2)}


def machine_cpu() -> float:
    import psutil

    times = psutil.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40, help="training batches of each child")
    args = parser.parse_args()
    from tests.slow.ray_nodes import ray_cluster, ray_env

    os.environ.update({k: v for k, v in ray_env(ROOT).items() if k in ("RAY_AUTH_MODE", "PYTHONPATH")})
    import mlflow

    from experiments.run.reporting import quiet_libraries
    from experiments.sweeps.sweep import children, run_sweep
    from tests.slow.servers import postgres_server

    quiet_libraries()
    seeds = ",".join(str(s) for s in range(1, args.children + 1))
    results = {}
    with tempfile.TemporaryDirectory() as folder, postgres_server() as db:
        mlflow.MlflowClient(db).search_experiments()  # MLflow's schema made here, not in the first sweep measured
        for name, (workers, cpus) in CLUSTERS.items():
            root = Path(folder) / name.replace(" ", "_")
            store = [f"tracking.tracking_uri={db}", f"tracking.artifact_root={root / 'artifacts'}",
                     f"tracking.checkpoint_dir={root / 'checkpoints'}", f"tracking.experiment_name=nodes_{workers}_{cpus}"]
            with ray_cluster(root / "nodes", workers=workers, cpus=cpus) as nodes:
                print(f"{name}: sweep of {args.children} children ...", file=sys.stderr, flush=True)
                wall, cpu = time.perf_counter(), machine_cpu()
                parent = run_sweep("cnn_mnist_bundled", [f"trainer.seed={seeds}", *LEAN,
                                                         f"trainer.limit_train_batches={args.batches}", *store],
                                   address=nodes["address"])
                wall, cpu = time.perf_counter() - wall, machine_cpu() - cpu
            client = mlflow.MlflowClient(db)
            kids = children(client, client.get_run(parent))
            assert len(kids) == args.children and {r.info.status for r in kids} == {"FINISHED"}, name
            own = sum((r.info.end_time - r.info.start_time) / 1000 for r in kids)
            results[name] = (wall, cpu, own, len({r.data.tags.get("sweep.node") for r in kids}))

    print(f"{args.children} children of {args.batches} training batches each; PostgreSQL store; all on 127.0.0.1")
    print(f"{'':18s} {'wall s':>7s} {'machine CPU s':>14s} {'runs s':>7s} {'nodes used':>11s}")
    for name, (wall, cpu, own, used) in results.items():
        print(f"{name:18s} {wall:7.1f} {cpu:14.1f} {own:7.1f} {used:11d}")
    base, two, wide = (results[name] for name in CLUSTERS)
    print(f"ratio 2 nodes / 1 node x 1 CPU: wall {two[0] / base[0]:.2f}, CPU {two[1] / base[1]:.2f}; "
          f"ratio 2 nodes / 1 node x 2 CPUs: wall {two[0] / wide[0]:.2f}, CPU {two[1] / wide[1]:.2f}")


if __name__ == "__main__":
    main()
