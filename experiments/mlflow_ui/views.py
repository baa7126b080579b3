"""The experiment's chart view in the MLflow UI, published as a shared view, and links into the UI.

MLflow 3.17's UI reads a view from the experiment tag ``mlflow.sharedViewState.<key>`` when the runs page is opened
with ``viewStateShareKey=<key>``; in the saved-view envelope (``{"name", "createdAt", "updatedAt", "state"}``) the
view is also listed in the page's "Views" menu. :func:`publish_view` builds that view from the experiment's metric
keys and stepped-image keys:

* sections in reading order: training curves (``train``, ``val``, ``test``), then the analyses (``latent``,
  ``oip``, ``dream``), other prefixes, ``Model metrics`` (keys without a ``/``), ``System metrics`` — the UI's own
  order is alphabetical (``isAccordionReordered`` keeps ours);
* a line card per metric logged at a step >= 1, a bar card otherwise (as the UI itself decides), with the smoothing
  and x-axis fields a line card needs (without them the UI draws a NaN-smoothed line);
* image cards in their own one-column, tall sections, without the caption listing every run param
  (``showRunParams: false``), starting at the last step all shown runs have.

Keys the view misses (logged after it was published) still appear: the UI adds a card for every new key.
:func:`experiment_url` and :func:`run_url` give the links ``latentdream ui`` prints (``workflowType`` selects the
model-training UI; without it a fresh browser lands on the GenAI overview).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from experiments.run import store

VIEW_KEY = "latentdream"
VIEW_NAME = "latentdream: curves, analyses"
TAG_PREFIX = "mlflow.sharedViewState."
VIEW_TAG = TAG_PREFIX + VIEW_KEY
MAX_TAG_LENGTH = 20_000  # MLflow's MAX_EXPERIMENT_TAG_VAL_LENGTH, also the UI's limit for a saved view
AREAS = ("train", "val", "test", "latent", "oip", "dream")  # section order: curves first, then the analyses
FIRST_CARDS = ("loss", "acc")  # a section's first cards
MODEL_METRICS, SYSTEM_METRICS, SYSTEM_PREFIX = "Model metrics", "System metrics", "system/"
IMAGE_COLUMNS, IMAGE_CARD_HEIGHT = 1, 960  # px; the UI's default is 3 columns of 360 px cards
LOG_SCALE = frozenset({"train/lr"})  # line cards on a log axis: schedules span decades
FITTED = ("train/loss", "val/loss", "test/loss", "train/acc", "val/acc", "test/acc", "train/lr")  # fitted y axes
MAX_FIT_RUNS = 10  # the runs whose histories fit the axes: those the UI's cards show (runsCountToCompare)
MAX_RUNS = 1000  # runs whose metric keys are read (the UI pages through 100 at a time)
MAX_IMAGE_RUNS = 10  # the UI shows the images of at most 10 runs

_LINE = {"lineSmoothness": 0, "xAxisKey": "step", "selectedXAxisMetricKey": "", "useGlobalLineSmoothing": True,
         "useGlobalXaxisKey": True, "scaleType": "linear", "xAxisScaleType": "linear", "yAxisKey": "metric",
         "yAxisExpressions": [], "ignoreOutliers": False, "range": {}}
log = logging.getLogger("latentdream")


# --- the view (pure) ---------------------------------------------------------------------------------------------
def section_name(key: str) -> str:
    """The section the UI files ``key`` under: everything before the last ``/`` (``val/loss`` → ``val``), ``Model
    metrics`` without a ``/``, ``System metrics`` for ``system/*``."""
    prefix = key.rsplit("/", 1)[0] if "/" in key else ""
    return MODEL_METRICS if not prefix else SYSTEM_METRICS if prefix + "/" == SYSTEM_PREFIX else prefix


def _rank(key: str) -> tuple[int, str]:
    area = key.split("/", 1)[0] if "/" in key else ""
    if section_name(key) == SYSTEM_METRICS:
        return len(AREAS) + 2, ""
    if not area:
        return len(AREAS) + 1, ""
    return (AREAS.index(area), "") if area in AREAS else (len(AREAS), area)


def _card_order(key: str) -> tuple[int, str]:
    # within a section: the loss, then the accuracy, then the rest alphabetically
    last = key.rsplit("/", 1)[-1]
    return (FIRST_CARDS.index(last) if last in FIRST_CARDS else len(FIRST_CARDS), key)


def _uuid(kind: str, name: str) -> str:
    # stable, so that publishing again gives the same view
    return f"ld-{kind}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def fitted_range(values: Iterable[float], log: bool = False) -> dict[str, float]:
    """A line card's y ``range`` fitted to ``values`` (finite ones; for ``log`` the positive ones, in log10 as the UI
    stores a log axis's range): min..max with 5 % margins, or ±10 % of the value when all are equal. Without it the
    UI's plot pads a constant curve by ±1, so a learning rate of 0.002 reads as 0 on a −1…1 axis; ``{}`` (the UI's
    own autorange) when there is nothing to fit."""
    vals = [float(v) for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return {}
    if log:
        vals = [math.log10(v) for v in vals]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.05 if hi > lo else (0.05 if log else max(abs(lo) * 0.1, 1e-9))
    return {"yMin": lo - pad, "yMax": hi + pad}


def view_state(metrics: Mapping[str, bool], images: Mapping[str, int],
               ranges: Mapping[str, Iterable[float]] | None = None) -> dict[str, Any]:
    """The UI state of the view.

    :param metrics: metric key → whether any run logged it at a step >= 1 (a line card; else a bar card).
    :param images: stepped-image key → the step its card starts at.
    :param ranges: metric key → the values its line card's y axis fits (:func:`fitted_range`; :data:`LOG_SCALE`
        keys on a log axis); keys without values keep the UI's autorange.
    :returns: ``compareRunSections``, ``compareRunCharts`` and ``isAccordionReordered`` (JSON-ready).
    """
    ranges = ranges or {}
    metric_sections = {section_name(k) for k in metrics}
    sections: dict[str, tuple] = {}  # name → sort key
    cards: list[tuple[tuple, dict]] = []
    for key in sorted(metrics, key=_card_order):
        name = section_name(key)
        sections[name] = (*_rank(key), 1, name)
        card = {"uuid": _uuid("card", key), "type": "LINE" if metrics[key] else "BAR", "metricKey": key,
                "metricSectionId": _uuid("section", name), "isGenerated": True, "deleted": False,
                "runsCountToCompare": 10}
        if metrics[key]:
            card.update(_LINE)
            log = key in LOG_SCALE
            card.update(scaleType="log" if log else "linear", range=fitted_range(ranges.get(key, ()), log))
            if name == SYSTEM_METRICS:  # as the UI does: system metrics over wall time
                card.update(xAxisKey="time", useGlobalXaxisKey=False)
        cards.append((sections[name], card))
    for key in sorted(images):
        base = section_name(key)
        name = f"{base} images" if base in metric_sections else base  # images get sections of their own
        sections[name] = (*_rank(key), 0, name)
        cards.append((sections[name], {"uuid": _uuid("image", key), "type": "IMAGE", "imageKeys": [key],
                                       "step": int(images[key]), "showRunParams": False,
                                       "metricSectionId": _uuid("section", name), "isGenerated": True,
                                       "deleted": False, "runsCountToCompare": 10}))
    image_sections = {n for n, order in sections.items() if order[2] == 0}
    ordered = sorted(sections, key=sections.__getitem__)
    return {
        "isAccordionReordered": True,
        "compareRunSections": [
            {"uuid": _uuid("section", n), "name": n, "display": True, "isReordered": True, "deleted": False,
             "isGenerated": True, **({"columns": IMAGE_COLUMNS, "cardHeight": IMAGE_CARD_HEIGHT}
                                     if n in image_sections else {})} for n in ordered],
        "compareRunCharts": [card for _, card in sorted(cards, key=lambda c: c[0])],
    }


def encode_view(state: Mapping[str, Any], created_at: int, updated_at: int, name: str = VIEW_NAME) -> str:
    """The tag value: the UI's saved-view envelope around ``state`` as JSON, or as ``deflate;`` + base64 of its
    zlib stream when the JSON would not fit :data:`MAX_TAG_LENGTH`. Cards (then sections) are left out from the end
    until it fits; the UI adds cards for the keys a view lacks.

    :param created_at: ms since the epoch, as is ``updated_at``.
    """
    state = dict(state)
    trim = ["compareRunCharts", "compareRunSections"]
    while True:
        text = json.dumps(state, separators=(",", ":"))
        envelope = {"name": name, "createdAt": created_at, "updatedAt": updated_at, "state": text}
        value = json.dumps(envelope)
        if len(value) > MAX_TAG_LENGTH:
            envelope["state"] = "deflate;" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
            value = json.dumps(envelope)
        trim = [k for k in trim if state.get(k)]
        if len(value) <= MAX_TAG_LENGTH or not trim:
            return value
        items = state[trim[0]]
        state[trim[0]] = items[: len(items) * 9 // 10]


def decode_view(value: str) -> dict[str, Any]:
    """The envelope of a tag value written by :func:`encode_view`, with ``state`` decoded to a dict."""
    envelope = json.loads(value)
    state = envelope["state"]
    if state.startswith("deflate;"):
        state = zlib.decompress(base64.b64decode(state.removeprefix("deflate;"))).decode()
    return {**envelope, "state": json.loads(state)}


# --- reading the experiment and publishing -----------------------------------------------------------------------
def image_steps(paths: Iterable[str]) -> dict[str, set[int]]:
    """Stepped-image key → steps, from a run's ``images/`` artifact paths (``images/<key with / as ~>+step+<n>+…``;
    older MLflow wrote ``#`` for ``/`` and ``%`` as the separator)."""
    found: dict[str, set[int]] = {}
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        for sep in ("+", "%"):
            parts = name.split(sep)
            if len(parts) >= 3 and parts[1] == "step" and parts[2].isdigit():
                key = parts[0].replace("~", "/").replace("#", "/")
                found.setdefault(key, set()).add(int(parts[2]))
                break
    return found


def start_step(steps_per_run: list[set[int]]) -> int:
    """The step an image card starts at: the last step every run has (newest run first in the list), else the newest
    run's last step — the UI shows an image only at exactly the selected step."""
    common = set.intersection(*steps_per_run) if steps_per_run else set()
    return max(common) if common else max(steps_per_run[0], default=0)


def experiment_keys(client: Any, experiment_id: str) -> tuple[dict[str, bool], dict[str, int], dict[str, list[float]]]:
    """``(metric key → stepped, image key → start step, fitted key → values)`` over the experiment's active runs
    (newest :data:`MAX_RUNS`; images from the newest :data:`MAX_IMAGE_RUNS` runs that logged any; the values of
    the :data:`FITTED` keys from the newest :data:`MAX_FIT_RUNS` runs' histories)."""
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES

    runs = client.search_runs([experiment_id], max_results=MAX_RUNS, order_by=["attributes.start_time DESC"])
    metrics: dict[str, bool] = {}
    for run in runs:
        for metric in getattr(run.data, "_metric_objs", []):  # the latest value of each key, with its step
            metrics[metric.key] = metrics.get(metric.key, False) or metric.step >= 1
    per_run: dict[str, list[set[int]]] = {}
    for run in [r for r in runs if r.data.tags.get(MLFLOW_LOGGED_IMAGES)][:MAX_IMAGE_RUNS]:
        paths = [f.path for f in client.list_artifacts(run.info.run_id, "images")]
        for key, steps in image_steps(paths).items():
            per_run.setdefault(key, []).append(steps)
    values: dict[str, list[float]] = {}
    for run in runs[:MAX_FIT_RUNS]:
        logged = {m.key for m in getattr(run.data, "_metric_objs", [])}
        for key in (k for k in FITTED if k in logged):
            values.setdefault(key, []).extend(m.value for m in client.get_metric_history(run.info.run_id, key))
    return metrics, {key: start_step(steps) for key, steps in per_run.items()}, values


def _collided(err: BaseException) -> bool:
    """Two processes publishing at once collide in sqlite: "database is locked", or both inserting the new row."""
    return any(word in str(err).lower() for word in ("locked", "unique", "integrity", "duplicate"))


def publish_view(client: Any, experiment_id: str) -> str:
    """Build the view of experiment ``experiment_id`` from its current keys and store it as the experiment tag
    :data:`VIEW_TAG`; returns the view's key (for ``viewStateShareKey``). Idempotent: an unchanged view is not
    written again, and ``createdAt`` survives updates.

    :raises mlflow.exceptions.MlflowException: unknown or deleted experiment, store errors.
    """
    state = view_state(*experiment_keys(client, experiment_id))
    old = client.get_experiment(experiment_id).tags.get(VIEW_TAG)
    now = int(time.time() * 1000)
    created = now
    if old:
        try:
            previous = decode_view(old)
            created = int(previous["createdAt"])
            if previous["state"] == json.loads(json.dumps(state)):
                return VIEW_KEY
        except (ValueError, KeyError, TypeError, zlib.error):
            pass  # not ours or damaged: replace it
    # the last writer wins
    store.with_retries(client.set_experiment_tag, experiment_id, VIEW_TAG, encode_view(state, created, now),
                       base_delay=0.1, retry_if=_collided)
    return VIEW_KEY


def try_publish_view(client: Any, experiment_id: str) -> str | None:
    """:func:`publish_view`, but a failure is a warning, not an error: for the end of a command whose real work
    (a run, an analysis) is already stored. Returns the key, or None when it failed."""
    try:
        return publish_view(client, experiment_id)
    except Exception as err:  # noqa: BLE001 - the view is a convenience; never fail a finished run over it
        log.warning("could not publish the MLflow UI view of experiment %s: %s", experiment_id, err)
        return None


# --- links -------------------------------------------------------------------------------------------------------
ML = "workflowType=machine_learning"  # the model-training UI (the default for a fresh browser is GenAI)


def experiments_url(base_url: str) -> str:
    """The experiments list."""
    return f"{base_url.rstrip('/')}/#/experiments?{ML}"


def experiment_url(base_url: str, experiment_id: str, view: bool = True) -> str:
    """The experiment's runs as charts; with ``view``, in the published view (:func:`publish_view`)."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML}&compareRunsMode=CHART"
    return f"{url}&viewStateShareKey={VIEW_KEY}" if view else url


def run_url(base_url: str, experiment_id: str, run_id: str, tab: str = "model-metrics") -> str:
    """A run's page, by default on its Model metrics tab (its curves and stepped images); ``tab="artifacts"`` or
    ``"artifacts/<path>"`` opens its files."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/{tab}?{ML}"


def compare_url(base_url: str, experiment_id: str, run_ids: Iterable[str]) -> str:
    """MLflow's Compare page for ``run_ids`` (a parallel-coordinates plot of params and the first stored metric,
    ``val/loss`` for latentdream's runs, then tables of params, metrics and tags)."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")))
    experiments = quote(json.dumps([experiment_id], separators=(",", ":")))
    return f"{base_url.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}&{ML}"
