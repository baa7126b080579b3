"""Runs as a first-class path: ``latentdream runs [EXPERIMENT]`` and ``latentdream compare RUN_A RUN_B [...]``.

* :func:`runs_table` / :func:`print_runs` — the runs of one experiment (or all) with status, key params and metrics.
* :func:`compare_runs` — a new run (tag ``kind=comparison``, experiment ``comparisons``) holding the differing
  params, the final metrics and comparison figures of two or more runs of the same kind. Every input is checked and
  every figure drawn *before* that run is created, so bad input never leaves an empty comparison behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import mlflow
import numpy as np
import pandas as pd

from analysis import tracking
from analysis.plots import compare as plots
from experiments.commands.compare import map_comparison, same_start
from experiments.reports import publish as reports
from experiments.run import store
from experiments.run.config import recorded_config
from latentdream import stopping
from latentdream.errors import InputError

COMPARISON_EXPERIMENT = "comparisons"  # the experiment that holds the comparison runs

# The columns of `latentdream runs`: the config values people vary (params or config tags) and the metrics they
# judge a run by.
KEY_CONFIG = tracking.PARAM_KEYS  # params of every run, old and new
KEY_METRICS = (tracking.TRAIN_LOSS, tracking.VAL_LOSS, tracking.VAL_ACC, tracking.TEST_LOSS, tracking.TEST_ACC)
KEY_TAGS = (tracking.TAG_KIND, tracking.TAG_MODEL, tracking.TAG_DATASET)

# --- latentdream runs --------------------------------------------------------------------------------------------
def runs_table(experiment: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """The runs of ``experiment`` (None: of every experiment), newest first.

    Columns: ``run_id``, ``experiment``, ``run_name``, ``status``, ``health`` (the verdict), ``start_time``, the tags
    :data:`KEY_TAGS`, the config values :data:`KEY_CONFIG` and the metrics :data:`KEY_METRICS` (final values) — each
    health/config/metric column only if some run has it.

    :raises InputError: ``experiment`` does not exist (the message lists the ones that do); server unreachable.
    """
    uri, client = store.client_for(tracking_uri)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    if experiment is not None and experiment not in names.values():
        raise InputError(f"unknown experiment {experiment!r} in {uri}; existing: {', '.join(sorted(names.values())) or 'none'}")
    ids = [i for i, n in names.items() if experiment is None or n == experiment]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # search_runs has no tracking_uri argument
    try:
        found = mlflow.search_runs(experiment_ids=ids, output_format="pandas") if ids else pd.DataFrame()
    finally:
        mlflow.set_tracking_uri(previous)
    return _select_columns(found, names)


def _select_columns(found: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    base = ["run_id", "experiment", "run_name", "status", "start_time", *KEY_TAGS]
    if found.empty:
        return pd.DataFrame(columns=base)
    out = pd.DataFrame({
        "run_id": found["run_id"],
        "experiment": found["experiment_id"].map(names),
        "run_name": found.get("tags.mlflow.runName"),
        "status": found["status"],
        "start_time": found["start_time"],
    })
    for tag in KEY_TAGS:
        out[tag] = found.get(f"tags.{tag}")
    health = found.get(f"tags.{tracking.TAG_HEALTH}")  # ok, or why the run's numbers describe a broken network
    if health is not None and health.notna().any():
        out.insert(out.columns.get_loc("status") + 1, tracking.TAG_HEALTH, health)
    for prefix, keys in (("params", KEY_CONFIG), ("metrics", KEY_METRICS)):
        for key in keys:
            column = found.get(f"{prefix}.{key}")
            if column is not None and column.notna().any():
                out[key] = column
    return out.reset_index(drop=True)


# Which columns survive a narrow terminal, most wanted first (the run id is what the other commands take).
COLUMN_PRIORITY = ("run_id", "run_name", "status", tracking.TAG_HEALTH, tracking.VAL_LOSS, tracking.VAL_ACC, "start_time", "experiment",
                   tracking.TAG_KIND, "optim.lr", "optim.name", "trainer.max_epochs", tracking.TEST_ACC,
                   tracking.TRAIN_LOSS, "data.batch_size", tracking.TEST_LOSS, tracking.TAG_MODEL, tracking.TAG_DATASET)
MAX_CELL = 24  # characters of a text cell (a long run name) before it is cut with "…"


def format_runs(frame: pd.DataFrame, width: int | None = None) -> str:
    """The table as fixed-width text: times to the minute (UTC), metrics to 4 significant digits, '-' for missing.

    :param width: fit this many characters a line (a terminal's width): columns are kept in the order of
        :data:`COLUMN_PRIORITY` while they fit (the run id always), long text cells cut to :data:`MAX_CELL`
        characters, and a last line names the columns left out. None: every column, nothing cut.
    """
    if frame.empty:
        return "no runs"
    shown = frame.copy()
    if "start_time" in shown:
        shown["start_time"] = pd.to_datetime(shown["start_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    if shown["experiment"].nunique() == 1 and width is not None:
        shown = shown.drop(columns="experiment")  # one experiment: say it once, not on every line
    render = dict(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}")
    if width is None:
        return shown.to_string(**render)
    for column in shown.columns:
        if column != "run_id" and not pd.api.types.is_numeric_dtype(shown[column]):  # ids stay whole
            shown[column] = shown[column].map(lambda v: v if not isinstance(v, str) or len(v) <= MAX_CELL
                                              else v[:MAX_CELL - 1] + "…")
    ranked = [c for c in COLUMN_PRIORITY if c in shown] + [c for c in shown if c not in COLUMN_PRIORITY]
    kept: list[str] = []
    for column in ranked:
        trial = [c for c in shown.columns if c in kept or c == column]
        if not kept or max(map(len, shown[trial].to_string(**render).splitlines())) <= width:
            kept.append(column)
    text = shown[[c for c in shown.columns if c in kept]].to_string(**render)
    hidden = [c for c in ranked if c not in kept]
    return text + (f"\n({len(hidden)} more columns: {', '.join(hidden)}; a wider terminal shows them)" if hidden else "")


def print_runs(experiment: str | None = None, tracking_uri: str | None = None, file: TextIO | None = None,
               width: int | None = None) -> pd.DataFrame:
    """Print :func:`runs_table` (see :func:`format_runs`) and return it. On a terminal the table fits its width
    (``width`` None); into a pipe or file it is printed whole."""
    frame = runs_table(experiment, tracking_uri)
    out = file or sys.stdout
    if width is None and out.isatty():
        width = shutil.get_terminal_size().columns
    print(format_runs(frame, width), file=out)
    return frame


# --- latentdream compare -----------------------------------------------------------------------------------------
def params_diff(params: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Config values that differ between runs (a key missing from some run counts as differing).

    :param params: run id → {config key: value} (:func:`experiments.run.config.recorded_config`).
    :returns: columns ``param`` then one per run id (missing: empty string), rows sorted by key.
    """
    keys = sorted(set().union(*(p.keys() for p in params.values())))
    rows = [[k, *(p.get(k, "") for p in params.values())] for k in keys]
    rows = [r for r in rows if len(set(r[1:])) > 1]
    return pd.DataFrame(rows, columns=["param", *params.keys()])


def final_metrics(metrics: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Every metric's last logged value: columns ``metric`` then one per run id (NaN where a run lacks it)."""
    keys = sorted(set().union(*(m.keys() for m in metrics.values())))
    rows = [[k, *(m.get(k, np.nan) for m in metrics.values())] for k in keys]
    return pd.DataFrame(rows, columns=["metric", *metrics.keys()])


@dataclass(frozen=True)
class Comparison:
    """Everything a comparison run will hold, built before the run exists."""

    run_ids: tuple[str, ...]
    labels: tuple[str, ...]  # the runs' names, as the figures show them
    kind: str
    tables: dict[str, pd.DataFrame]  # artifact path → table
    figures: dict[str, Any]  # artifact path → Figure
    skipped: dict[str, str]  # figure name → why it was not drawn
    groups: dict[str, list[str]] = field(default_factory=dict)  # a sweep's grid point → its finished runs
    metrics: dict[str, float] = field(default_factory=dict)  # compare/cka/<layer>


def _label(run_id: str) -> str:
    return run_id[:8]


def _names(runs: Sequence[Any]) -> list[str]:
    """The runs' names for legends and rows (the id's first 8 characters where a run has none or shares it)."""
    names = [r.data.tags.get("mlflow.runName") or _label(r.info.run_id) for r in runs]
    return [n if names.count(n) == 1 else f"{n} ({_label(r.info.run_id)})" for n, r in zip(names, runs)]


CURVE_KEYS = (tracking.TRAIN_LOSS, tracking.VAL_LOSS, tracking.TRAIN_ACC, tracking.VAL_ACC)


def _curve_figure(client: Any, groups: Sequence[Sequence[Any]], labels: list[str], figures: dict) -> None:
    """The training curves of each group of runs (one run, or a sweep point's seeds: their mean per epoch)."""
    histories = []
    for runs in groups:
        history = {}
        for key in CURVE_KEYS:
            points = pd.DataFrame([(m.step, m.value) for run in runs
                                   for m in client.get_metric_history(run.info.run_id, key)], columns=["step", "value"])
            if not points.empty:
                mean = points.groupby("step")["value"].mean()
                history[key] = (mean.index.to_numpy(), mean.to_numpy())
        histories.append(history)
    figures[tracking.COMPARE_LOSS_CURVES] = plots.loss_curves(histories, labels)


def _files(client: Any, run_id: str, folder: str) -> set[str]:
    """Artifact paths directly under ``folder`` of the run (empty if the folder does not exist)."""
    try:
        return {f.path for f in client.list_artifacts(run_id, folder) if not f.is_dir}
    except Exception:  # noqa: BLE001 - a missing folder is "no files" for every artifact repository
        return set()


def _check_runs(client: Any, uri: str, run_ids: Sequence[str]) -> tuple[list[Any], str]:
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise InputError(f"compare needs at least 2 different run ids; got {len(ids)}: {' '.join(ids) or 'none'}")
    runs = [store.find_run(client, uri, run_id, kinds=tracking.TRAINED_KINDS) for run_id in ids]
    kinds = {r.info.run_id: r.data.tags.get(tracking.TAG_KIND) for r in runs}
    if len(set(kinds.values())) > 1:
        listing = ", ".join(f"{_label(i)}={k}" for i, k in kinds.items())
        raise InputError(f"cannot compare runs of different kinds ({listing}); give only autoencoder or only classifier runs")
    return runs, next(iter(kinds.values()))


def _latent_figures(client: Any, ids: list[str], labels: list[str], tmp: Path, figures: dict, skipped: dict) -> None:
    need = (tracking.LATENT_HISTOGRAMS, tracking.LATENT_COMPONENTS, tracking.LATENT_HIT_RATES)
    missing = [f"{_label(i)} has no {p}" for i in ids for p in need if p not in _files(client, i, tracking.LATENT_DIR)]
    if missing:
        for name in (tracking.COMPARE_LATENT_HISTOGRAMS, tracking.COMPARE_HIT_RATES):
            skipped[Path(name).name] = "; ".join(missing)
        return
    loaded = []
    for i in ids:
        local = Path(client.download_artifacts(i, tracking.LATENT_DIR, str(tmp / i))).parent
        with np.load(local / tracking.LATENT_HISTOGRAMS) as npz:
            loaded.append((npz["edges"], npz["counts"], pd.read_csv(local / tracking.LATENT_COMPONENTS),
                           pd.read_csv(local / tracking.LATENT_HIT_RATES)))
    edges, counts, comps, hits = zip(*loaded)
    figures[tracking.COMPARE_LATENT_HISTOGRAMS] = plots.dominant_histograms(edges, counts, comps, labels)
    figures[tracking.COMPARE_HIT_RATES] = plots.hit_rate_curves(hits, labels)


def _oip_figures(client: Any, ids: list[str], labels: list[str], tmp: Path, figures: dict, skipped: dict,
                 index_order: bool) -> dict[str, tuple[list, list, list]]:
    """The runs' OIP pages in index order where ``index_order`` (runs from the same initial weights); returns OIP
    stem → per run (patterns, dead, maps) for every stem all runs logged as ``.npz``."""
    d = tracking.OIP_DIR
    loaded = {}
    files = [_files(client, i, d) for i in ids]
    stems = sorted({Path(p).stem for f in files for p in f if p.endswith((".npz", ".png"))
                    and not Path(p).stem.startswith("examples_")})  # examples_<layer>: per layer, not compared
    if not stems:
        skipped["oip_*.png"] = f"no run has {d}/<layer>_<init>.npz or .png"
    for stem in stems:
        if all(f"{d}/{stem}.npz" in f for f in files):
            pats, dead, maps = [], [], []
            for i in ids:
                with np.load(client.download_artifacts(i, f"{d}/{stem}.npz", str(tmp / i))) as npz:
                    n = len(npz["patterns"])
                    pats.append(npz["patterns"])
                    dead.append(npz["dead"] if "dead" in npz else np.zeros(n, bool))
                    maps.append(npz["maps"] if "maps" in npz else np.arange(n))
            loaded[stem] = (pats, dead, maps)
            if not index_order:
                skipped[f"oip_{stem}_maps*"] = ("index order means nothing across runs from different initial "
                                                f"weights (trainer.seed or model.*): see oip_{stem}_matched.png")
                continue
            for page, figure in plots.oip_pages(pats, labels, dead=dead, maps=maps, title=f"OIPs of {stem}"):
                figures[tracking.compare_oip_png(stem, page)] = figure
        elif all(f"{d}/{stem}.png" in f for f in files):
            from PIL import Image

            imgs = [np.asarray(Image.open(client.download_artifacts(i, f"{d}/{stem}.png", str(tmp / i))).convert("RGB"))
                    for i in ids]
            figures[tracking.compare_oip_png(stem, "all")] = plots.images_side_by_side(imgs, labels,
                                                                                       title=f"OIPs of {stem}")
        else:
            skipped[f"oip_{stem}"] = f"not every run has {d}/{stem}.npz or .png"
    return loaded


def build_comparison(client: Any, uri: str, run_ids: Sequence[str]) -> Comparison:
    """Check the runs and build the tables and figures (nothing is written to the store).

    One id of a sweep's parent compares the sweep's grid points instead: a point's final metrics and curves are the
    means over its seeds (table columns are the points), its figures come from its first seed's run.

    :raises InputError: fewer than 2 distinct ids (or grid points), an unknown or deleted run, a run that is no
        training run, or runs of different kinds.
    """
    from experiments.sweeps.sweep import point_groups

    swept = point_groups(client, uri, run_ids)
    if swept is None:
        runs, kind = _check_runs(client, uri, run_ids)
        compared, labels, groups = [r.info.run_id for r in runs], _names(runs), {r.info.run_id: [r] for r in runs}
    else:
        compared, groups = [swept[0]], swept[1]
        labels, kind = list(groups), next(iter(groups.values()))[0].data.tags.get(tracking.TAG_KIND)
    ids = [members[0].info.run_id for members in groups.values()]
    tables = {
        tracking.COMPARE_PARAMS_DIFF: params_diff({c: recorded_config(m[0]) for c, m in groups.items()}),
        tracking.COMPARE_FINAL_METRICS: final_metrics({c: _mean_metrics(m) for c, m in groups.items()}),
    }
    figures: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    _curve_figure(client, list(groups.values()), labels, figures)
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if kind == tracking.KIND_AUTOENCODER:
            _latent_figures(client, ids, labels, Path(tmp), figures, skipped)
        else:
            same = same_start([recorded_config(m[0]) for m in groups.values()])
            oips = _oip_figures(client, ids, labels, Path(tmp), figures, skipped, index_order=same)
            maps = map_comparison(client, ids, labels, Path(tmp), oips)
            tables.update(maps.tables)
            figures.update(maps.figures)
            skipped.update(maps.skipped)
            metrics = maps.metrics
    members = {c: [r.info.run_id for r in m] for c, m in groups.items()} if swept is not None else {}
    return Comparison(tuple(compared), tuple(labels), kind, tables, figures, skipped, members, metrics)


def _mean_metrics(runs: Sequence[Any]) -> dict[str, float]:
    """Each metric's final value, averaged over ``runs`` that hold it (one run: its own values)."""
    keys = set().union(*(r.data.metrics for r in runs))
    return {k: float(np.mean([r.data.metrics[k] for r in runs if k in r.data.metrics])) for k in keys}


def compare_runs(run_ids: Sequence[str], tracking_uri: str | None = None) -> str:
    """Compare two or more runs of one kind into a new run of experiment ``comparisons``; returns its id.

    The new run has tags ``kind=comparison``, ``compared_runs=<id,id,...>``, ``compared_kind`` and holds
    ``compare/params_diff.csv``, ``compare/final_metrics.csv``, ``compare/summary.json`` and the figures:
    autoencoders ``compare/latent_histograms.png``, ``compare/hit_rates.png``; classifiers what
    :mod:`experiments.commands.compare` makes (map matching, matched OIPs, CKA) and, for runs from the same initial
    weights, the OIPs in index order ``compare/oip_<layer>_<init>_maps<a>-<b>.png``. Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) it writes into that run instead.

    :raises InputError: see :func:`build_comparison`; nothing is created then.
    """
    uri, client = store.client_for(tracking_uri)
    comparison = build_comparison(client, uri, run_ids)
    tags = {tracking.TAG_KIND: tracking.KIND_COMPARISON, tracking.TAG_COMPARED: ",".join(comparison.run_ids),
            tracking.TAG_COMPARED_KIND: comparison.kind}
    outer = os.environ.get("MLFLOW_RUN_ID")  # set by `mlflow run`, which made the run we must log into
    if outer:
        for key, value in tags.items():
            client.set_tag(outer, key, value)
        _log_comparison(tracking.RunWriter(client, outer), comparison)
        reports.try_publish_report(client, outer)
        return outer
    experiment_id = store.experiment_id_for(client, COMPARISON_EXPERIMENT, store.default_artifact_root(uri))
    name = "compare " + " vs ".join(comparison.labels)
    with stopping.deferred():  # a SIGTERM from here on ends the run KILLED, between two files
        run_id = client.create_run(experiment_id, run_name=name[:250], tags=tags).info.run_id
        with store.ended(client, run_id):
            _log_comparison(tracking.RunWriter(client, run_id), comparison)
        reports.try_publish_report(client, run_id)  # report.html of the comparison
    return run_id


def _log_comparison(writer: tracking.RunWriter, comparison: Comparison) -> None:
    for path, table in comparison.tables.items():
        stopping.check_stop()
        writer.table(path, table)
    for path, figure in comparison.figures.items():
        stopping.check_stop()
        writer.figure(path, figure)
    if comparison.metrics:
        writer.metrics(comparison.metrics, step=0)
    groups = {"groups": comparison.groups} if comparison.groups else {}
    writer.json(tracking.COMPARE_SUMMARY, {"compared_runs": list(comparison.run_ids), "kind": comparison.kind,
                                           "figures": sorted(comparison.figures), "skipped": comparison.skipped,
                                           **groups})
