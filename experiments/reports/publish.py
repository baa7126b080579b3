"""Log a run's ``report.html`` (:mod:`experiments.reports.page`) at the end of ``train``, ``compare``, a sweep and
the commands that add analyses to a run: its facts and files are read back from the store, so the report shows
exactly what the run holds, including what other analyses added."""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from analysis import tracking
from experiments.reports.page import SKIPPED_FOLDERS, Interactive, RunFacts, build_report

log = logging.getLogger("latentdream")
SHOWN = (".png", ".csv", ".json", ".yaml", ".txt")  # read into the report; other files are listed by name
MAX_REPORT_BYTES = 5_000_000  # the whole page
MAX_IMAGES_BYTES = 2_700_000  # PNG bytes (base64 makes them 4/3 larger): larger figure sets are downscaled to fit
MAX_SCATTER = 400  # latent vectors in the interactive scatter (all their components: ~0.6 MB for z_dim 256)
MAX_HISTORY_KEYS = 200


def _walk(client: Any, run_id: str, path: str | None = None) -> list[Any]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            if item.path.split("/", 1)[0] not in SKIPPED_FOLDERS:
                found += _walk(client, run_id, item.path)
        elif item.path != tracking.REPORT:
            found.append(item)
    return found


def run_files(client: Any, run_id: str, tmp: Path) -> tuple[dict[str, bytes], Interactive]:
    """The run's files the report shows (path → bytes; other files → b"" so they are listed) and the arrays of
    its interactive plots."""
    files: dict[str, bytes] = {}
    wanted = {tracking.LATENT_HISTOGRAMS, tracking.LATENT_Z_SAMPLE}
    for item in _walk(client, run_id):
        if item.path.endswith(SHOWN) or item.path in wanted:
            local = Path(client.download_artifacts(run_id, item.path, str(tmp)))
            files[item.path] = local.read_bytes()
        else:
            files[item.path] = b""
    return _fit_images(files), _interactive(files)


def _interactive(files: dict[str, bytes]) -> Interactive:
    hist = scatter = None
    if files.get(tracking.LATENT_HISTOGRAMS):
        with np.load(io.BytesIO(files.pop(tracking.LATENT_HISTOGRAMS))) as npz:
            hist = {"edges": np.round(npz["edges"], 5).tolist(), "counts": npz["counts"].astype(int).tolist()}
        files[tracking.LATENT_HISTOGRAMS] = b""
    if files.get(tracking.LATENT_Z_SAMPLE):
        z = np.load(io.BytesIO(files.pop(tracking.LATENT_Z_SAMPLE)))
        scatter = {"z": np.round(z[:MAX_SCATTER], 3).tolist()}
        files[tracking.LATENT_Z_SAMPLE] = b""
    return Interactive(histograms=hist, scatter=scatter)


def _fit_images(files: dict[str, bytes]) -> dict[str, bytes]:
    """Downscale the largest PNGs (halving their sides) until all fit :data:`MAX_IMAGES_BYTES`."""
    from PIL import Image

    pngs = {p: b for p, b in files.items() if p.endswith(".png") and b}
    for _ in range(40):
        if sum(map(len, pngs.values())) <= MAX_IMAGES_BYTES:
            break
        path = max(pngs, key=lambda p: len(pngs[p]))
        image = Image.open(io.BytesIO(pngs[path]))
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
        pngs[path] = buf.getvalue()
    return {**files, **pngs}


def run_facts(client: Any, run_id: str) -> RunFacts:
    run = client.get_run(run_id)
    keys = [k for k in sorted(run.data.metrics) if not k.startswith("system/")][:MAX_HISTORY_KEYS]
    histories = {k: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)]
                 for k in keys}
    experiment = client.get_experiment(run.info.experiment_id).name
    return RunFacts(run_id=run_id, name=run.info.run_name or run_id, experiment=experiment, status=run.info.status,
                    params=dict(run.data.params), tags={k: v for k, v in run.data.tags.items()
                                                        if not k.startswith("mlflow.") or k == tracking.TAG_PARENT_RUN},
                    metrics=dict(run.data.metrics), histories=histories)


def publish_report(client: Any, run_id: str) -> int:
    """Build the run's report from what it holds now and log it as :data:`analysis.tracking.REPORT`; its size in
    bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        files, interactive = run_files(client, run_id, Path(tmp))
        facts = run_facts(client, run_id)
        page = build_report(facts, files, interactive).encode()
        if len(page) > MAX_REPORT_BYTES:  # a very wide latent space: the scatter goes, the figures stay
            page = build_report(facts, files, Interactive(histograms=interactive.histograms)).encode()
    tracking.RunWriter(client, run_id).text(tracking.REPORT, page.decode())
    return len(page)


def try_publish_report(client: Any, run_id: str) -> int | None:
    """:func:`publish_report`, a failure being a warning: the run's real work is already stored."""
    try:
        return publish_report(client, run_id)
    except Exception as err:  # noqa: BLE001 - the report is a view of the run; never fail a finished run over it
        log.warning("could not write the report of run %s: %s", run_id, err)
        return None
