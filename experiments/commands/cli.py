"""Train the blog posts' networks, analyse what they learned and record every run in MLflow.

The ``latentdream`` command: ``train``, ``sweep``, ``analyze``, ``oip``, ``dream``, ``runs``, ``compare``,
``register``, ``ui``, ``demo``.

Every subcommand takes ``key=value`` overrides anywhere after its positional arguments (also after options such as
``--image``). Bad input is reported as one line on stderr with exit code 2; nothing else is caught, so real bugs
keep their traceback.
"""

from __future__ import annotations

import argparse
import sys

from analysis import tracking
from experiments.run.reporting import quiet_libraries, reported

# what --help opens with: the docstring's first sentence, plain text (the docstring goes on in reStructuredText)
DESCRIPTION = __doc__.split("\n\n", 1)[0].replace("\n", " ")


def cmd_train(args: argparse.Namespace) -> int:
    from experiments.run.config import load_experiment
    from experiments.run.train import train

    cfg = load_experiment(args.experiment, args.overrides)
    result = train(cfg, command=" ".join(["latentdream", *sys.argv[1:]]))
    if result.rank:  # a DDP worker process: rank 0 reports the run
        return 0
    print(f"run {result.run_id} finished (experiment id {result.experiment_id})")
    for key in sorted(result.metrics):
        print(f"  {key} = {result.metrics[key]:.4f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from experiments.commands.demo import run_demo

    run_demo(args.overrides)
    return 0


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
                       metric=args.metric, mode=args.mode, command=" ".join(["latentdream", *sys.argv[1:]]))
    print(f"sweep {parent} finished (seed statistics: artifact {tracking.SWEEP_SUMMARY} of the parent run)")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from experiments.commands.registry import register_run

    from experiments.run import store

    uri, client = store.client_for()
    version = register_run(client, uri, args.run_id, args.name, args.alias)
    alias = f" with alias {args.alias} (models:/{args.name}@{args.alias})" if args.alias else ""
    print(f"run {args.run_id} registered as {args.name} version {version.version}{alias}")
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

    p = sub.add_parser("sweep", help="train a grid of runs (seeds as replicates) nested under one parent run")
    p.add_argument("experiment", help="experiment name (experiments/configs/NAME.yaml) or a YAML path")
    p.add_argument("overrides", nargs="*", help="key=a,b,c spans the grid (commas in [] or quotes do not split), "
                   "key=value sets every run, trainer.seed=1,2,3 lists replicates")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="runs trained at once (default 1)")
    p.add_argument("--random", type=int, metavar="K", help="train K random points of the grid")
    p.add_argument("--random-seed", type=int, default=0, help="seed of the --random draw (default 0)")
    p.add_argument("--resume", metavar="PARENT_ID",
                   help="continue a killed sweep (same grid): its unfinished runs in place, then the missing ones")
    p.add_argument("--register", metavar="NAME", help="register the best run's model under NAME")
    p.add_argument("--alias", help="with --register: the alias of the new version (e.g. champion)")
    p.add_argument("--metric", default=tracking.VAL_LOSS, help="with --register: the final metric that ranks runs")
    p.add_argument("--mode", choices=("min", "max"), default="min", help="with --register: best is min or max")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("register", help="register a run's logged model in MLflow's model registry")
    p.add_argument("run_id")
    p.add_argument("--name", required=True, help="registered model name (a new version if it exists)")
    p.add_argument("--alias", help="point this alias at the new version (models:/NAME@ALIAS)")
    p.set_defaults(func=cmd_register)

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
    return reported(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
