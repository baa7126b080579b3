"""Dispatch overhead of a sweep's children: Ray (this checkout) against the fork server of commit 31c059a.

Eight children of a 1-batch run (1 train, 1 val and 1 test batch, no analyses, no model), one at a time, into a fresh
sqlite store. The overhead per child is the sweep's wall time minus the children's own run time (each run's MLflow
start to end), divided by 8: Ray's start, the import of the training stack in each worker, the parent's own work.
Both sweeps run side by side in this one call, each in a fresh interpreter; CPU seconds (the sweep's process and
every child process it waited for; Ray's daemons are not its children, so their CPU is not counted) are printed too.
The goal of issue 22: at most 2 s per child.

    python benchmarks/sweep_dispatch.py [--children 8] [--old-commit 31c059a]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "data.batch_size=8", "oip.enabled=false", "dream.enabled=false",
         "analysis.enabled=false", "tracking.log_model=false", "tracking.system_metrics=false",
         "trainer.enable_progress_bar=false"]

MEASURE = r"""
import json, resource, sys, time
import mlflow
from experiments.sweeps.sweep import children, run_sweep
n, folder = int(sys.argv[1]), sys.argv[2]
seeds = ",".join(str(s) for s in range(1, n + 1))
store = [f"tracking.tracking_uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_root={folder}/mlruns",
         f"tracking.checkpoint_dir={folder}/checkpoints"]
began = time.perf_counter()
parent = run_sweep("cnn_mnist_bundled", [f"trainer.seed={seeds}", *json.loads(sys.argv[3]), *store], parallel=1)
wall = time.perf_counter() - began
client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
runs = children(client, client.get_run(parent))
own = sum((r.info.end_time - r.info.start_time) / 1000 for r in runs)
cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
          for f in ("ru_utime", "ru_stime"))
print("RESULT", json.dumps({"wall": wall, "own": own, "cpu": cpu, "n": len(runs)}))
"""


def measure(code_root: Path, n: int) -> dict:
    """One sweep of ``n`` children with the code at ``code_root``, in a fresh interpreter and a fresh store."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(code_root)}
        env.pop("MLFLOW_TRACKING_URI", None)
        done = subprocess.run([sys.executable, "-c", MEASURE, str(n), folder, json.dumps(ITEMS)], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=1800)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the sweep at {code_root} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(line[7:])


def old_checkout(commit: str, into: Path) -> Path:
    """The files of ``commit`` (``git archive``: no worktree, no checkout of this one touched)."""
    archive = into / "old.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        # the safe "data" filter where this Python has it (3.11.4+); our own git archive either way
        tar.extractall(into / "old", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return into / "old"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--old-commit", default="31c059a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = old_checkout(args.old_commit, Path(tmp))
        results = {"fork server (" + args.old_commit + ")": measure(old, args.children),
                   "Ray (this checkout)": measure(ROOT, args.children)}
    print(f"{args.children} children of a 1-batch run, one at a time")
    print(f"{'':28s} {'wall s':>8s} {'runs s':>8s} {'overhead/child s':>17s} {'CPU s':>7s}")
    per = {}
    for name, r in results.items():
        per[name] = (r["wall"] - r["own"]) / r["n"]
        print(f"{name:28s} {r['wall']:8.1f} {r['own']:8.1f} {per[name]:17.2f} {r['cpu']:7.1f}")
    (old_name, old), (new_name, new) = results.items()
    print(f"overhead per child, Ray / fork server: {per[new_name] / per[old_name]:.2f}; wall ratio "
          f"{new['wall'] / old['wall']:.2f}; CPU ratio {new['cpu'] / old['cpu']:.2f}; goal <= 2 s per child: "
          f"{'met' if per[new_name] <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
