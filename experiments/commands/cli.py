"""Train the blog posts' networks, analyse what they learned and record every run in MLflow.

The ``latentdream`` command: ``train``, ``sweep``, ``analyze``, ``oip``, ``dream``, ``runs``, ``compare``,
``register``, ``end``, ``ui``, ``demo``.

Every subcommand takes ``key=value`` overrides anywhere after its positional arguments (also after options such as
``--image``). Bad input is reported as one line on stderr with exit code 2; nothing else is caught, so real bugs
keep their traceback.
"""

from __future__ import annotations

import argparse
import sys

from analysis import tracking
from experiments.run.reporting import quiet_libraries, reported
from experiments.sweeps.grid import MAX_RUNS
from latentdream import stopping

# what --help opens with: the docstring's first sentence, plain text (the docstring goes on in reStructuredText)
DESCRIPTION = __doc__.split("\n\n", 1)[0].replace("\n", " ")


def cmd_train(args: argparse.Namespace) -> int:
    from experiments.run.config import load_experiment

    cfg = load_experiment(args.experiment, args.overrides)  # bad input fails before Lightning is imported
    from experiments.run.train import train

    result = train(cfg, command=" ".join(["latentdream", *sys.argv[1:]]))
    if result.rank:  # a DDP worker process: rank 0 reports the run
        return 0
    print(f"run {result.run_id} finished (experiment id {result.experiment_id})")
    for key in sorted(result.metrics):
        print(f"  {key} = {result.metrics[key]:.4f}")
    if result.health is not None and result.health != tracking.HEALTH_OK:  # the last line: the numbers above lie
        sys.stdout.flush()  # into one pipe (2>&1) the line must still come last
        print(f"latentdream: warning: run {result.run_id} is unhealthy: {result.health}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from experiments.commands.demo import report_health, run_demo

    return report_health(run_demo(args.overrides))  # an unhealthy demo run: one line each, exit 1


def cmd_ui(args: argparse.Namespace) -> int:
    from experiments.mlflow_ui.ui import serve

    return serve(host=args.host, port=args.port, allowed_hosts=args.allowed_hosts, workers=args.workers)


def cmd_analyze(args: argparse.Namespace) -> int:
    from experiments.commands.analyze import analyze

    analyze(args.run_id, args.overrides)
    return 0


def cmd_oip(args: argparse.Namespace) -> int:
    from experiments.commands.analyze import oip

    oip(args.run_id, args.overrides)
    return 0


def cmd_dream(args: argparse.Namespace) -> int:
    from experiments.commands.analyze import dream

    dream(args.run_id, args.image, args.overrides)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from experiments.commands.runs import print_runs

    print_runs(args.experiment)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from experiments.commands.runs import compare_runs

    run_id = compare_runs(args.run_ids)
    print(f"comparison run {run_id} in experiment 'comparisons' ({len(args.run_ids)} runs)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from experiments.sweeps.sweep import run_sweep

    parent = run_sweep(args.experiment, args.overrides, parallel=args.parallel, random=args.random,
                       random_seed=args.random_seed, resume=args.resume, register=args.register, alias=args.alias,
                       metric=args.metric, mode=args.mode, command=" ".join(["latentdream", *sys.argv[1:]]),
                       address=args.address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                       search=args.search, trials=args.trials, prune=args.prune, storage=args.storage,
                       max_runs=args.max_runs)
    what = tracking.SWEEP_TRIALS if args.search else tracking.SWEEP_SUMMARY
    print(f"sweep {parent} finished (artifact {what} of the parent run)")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from experiments.commands.registry import register_run

    from experiments.run import store

    uri, client = store.client_for()
    version = register_run(client, uri, args.run_id, args.name, args.alias)
    alias = f" with alias {args.alias} (models:/{args.name}@{args.alias})" if args.alias else ""
    print(f"run {args.run_id} registered as {args.name} version {version.version}{alias}")
    return 0


def cmd_end(args: argparse.Namespace) -> int:
    from experiments.run import store

    uri, client = store.client_for()
    store.end_stuck_run(client, uri, args.run_id, args.checkpoint_dir)
    print(f"run {args.run_id} marked KILLED (a crash had left it RUNNING); continue it with resume={args.run_id}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentdream", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one experiment into a new MLflow run")
    p.add_argument("experiment", help="experiment name (experiments/configs/NAME.yaml) or a YAML path")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=5e-4 trainer.max_epochs=12")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="train and analyse the demo runs on bundled data into the local store")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every demo run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("analyze", help="re-encode an autoencoder run's data and log the latent analysis into it")
    p.add_argument("run_id", help="run id, or models:/NAME@ALIAS or models:/NAME/VERSION (its source run)")
    p.add_argument("overrides", nargs="*", help="e.g. analysis.b=[1,1.5,2] analysis.n_bins=120")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("oip", help="render OIPs of a CNN run's conv maps and log them into the run")
    p.add_argument("run_id", help="run id, or models:/NAME@ALIAS or models:/NAME/VERSION (its source run)")
    p.add_argument("overrides", nargs="*", help="e.g. layer=conv3 init=fluct_7 maps=[0,1,2] steps=300")
    p.set_defaults(func=cmd_oip)

    p = sub.add_parser("dream", help="let a CNN run dream on a photo; panels and final images go into the run")
    p.add_argument("run_id", help="run id, or models:/NAME@ALIAS or models:/NAME/VERSION (its source run)")
    p.add_argument("--image", help="photo to dream on (default: the flower photo bundled with scikit-learn)")
    p.add_argument("overrides", nargs="*", help="e.g. mode=seed objective=conv3:56 cycles=6 child_run=true")
    p.set_defaults(func=cmd_dream)

    p = sub.add_parser("runs", help="list runs with status, key params and final metrics")
    p.add_argument("experiment", nargs="?", default=None, help="experiment name (default: every experiment)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("compare", help="compare runs of one kind into a new run of experiment 'comparisons'")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID",
                   help="two or more run ids, or one sweep's parent run id (its grid points are compared)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="train a grid (seeds as replicates) or an Optuna search of runs on Ray, nested "
                       "under one parent run")
    p.add_argument("experiment", help="experiment name (experiments/configs/NAME.yaml) or a YAML path")
    p.add_argument("overrides", nargs="*", help="key=a,b,c spans the grid (commas in [] or quotes do not split), "
                   "key=value sets every run, trainer.seed=1,2,3 lists replicates; key=uniform(a,b), loguniform(a,b), "
                   "int(a,b), choice(x,y) are distributions a --search samples")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="at most N runs at once (default: what the Ray cluster's resources allow)")
    p.add_argument("--address", help="a running Ray cluster's address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, metavar="C", help="CPUs each run reserves (default 1)")
    p.add_argument("--gpus-per-run", type=float, metavar="G",
                   help="GPUs each run reserves (default 1 where the cluster has GPUs, else 0)")
    p.add_argument("--search", choices=("tpe", "random"), help="sample the distributions with Optuna (TPE or random)")
    p.add_argument("--trials", type=int, metavar="N", help="with --search: how many runs to sample")
    p.add_argument("--prune", action="store_true",
                   help="with --search: stop weak trials after any epoch (Optuna's median pruner on --metric)")
    p.add_argument("--storage", metavar="URL", help="with --search: the study's database (default: the tracking "
                   "store's PostgreSQL, else a sqlite file beside the sweep's checkpoints)")
    p.add_argument("--random", type=int, metavar="K", help="train K random points of the grid")
    p.add_argument("--random-seed", type=int, default=0, help="seed of the --random draw or the --search (default 0)")
    p.add_argument("--max-runs", type=int, default=MAX_RUNS, metavar="N",
                   help=f"refuse a sweep of more runs than N (points × seeds; default {MAX_RUNS})")
    p.add_argument("--resume", metavar="PARENT_ID",
                   help="continue a killed sweep (same grid): its unfinished runs in place, then the missing ones")
    p.add_argument("--register", metavar="NAME", help="register the best run's model under NAME")
    p.add_argument("--alias", help="with --register: the alias of the new version (e.g. champion)")
    p.add_argument("--metric", default=tracking.VAL_LOSS,
                   help="the final metric that ranks runs (--register) and that a --search optimises")
    p.add_argument("--mode", choices=("min", "max"), default="min", help="best is min or max (default min)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("register", help="register a run's logged model in MLflow's model registry")
    p.add_argument("run_id")
    p.add_argument("--name", required=True, help="registered model name (a new version if it exists)")
    p.add_argument("--alias", help="point this alias at the new version (models:/NAME@ALIAS)")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("end", help="mark KILLED a run a crash left RUNNING (refused while it is still training)")
    p.add_argument("run_id")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="where the run's lock lives (default: the run's tracking.checkpoint_dir, else ./checkpoints)")
    p.set_defaults(func=cmd_end)

    p = sub.add_parser("ui", help="serve the MLflow UI over the project's store (127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAME[:PORT],...",
                   help="passed to mlflow server: answer only requests addressed to these host names")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    p.set_defaults(func=cmd_ui)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``key=value`` words that argparse leaves over (after an option such as ``--image``)
    join the subcommand's overrides, anything else left over is an error (exit 2)."""
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if "=" not in word or word.startswith("-")]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    quiet_libraries()
    with stopping.handle_signals():  # SIGTERM: exit 143, between units of work where a phase checks for it
        return reported(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
