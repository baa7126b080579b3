"""What users see in the MLflow UI, checked in a real headless Chromium (Debian's ``chromium``, driven by the
``playwright`` package of the test extra; ``make test`` installs both).

Two tiny CNN runs of two epochs with OIPs after each epoch, their comparison run, the experiment's published view
and ``latentdream ui`` over that store; then:

(a) a run's Model metrics tab: the OIP image card shows its image, inside the visible card, and steps over 2 epochs;
(b) the experiment's chart view (the published view) at 1600 px: training curves first, ``val/loss`` with both runs,
    the image card without the params caption, each of conv3's 128 OIP panels >= 48 px on screen with titles of
    >= 8 px (the rendered image's bounding box times the figure's panel layout);
(c) the comparison run's Artifacts tab lists its ``compare/`` files;
(d) MLflow's Compare page plots ``val/loss`` by default, not a system metric;
(e) each run's ``report.html`` (a training run, the comparison) inside MLflow's artifact viewer: curves first, every
    image loaded, no console error.

A missing browser fails the test (CI must not skip it); ``LATENTDREAM_SKIP_UI=1`` skips it on purpose. Screenshots go
to a temporary folder, or to ``$LATENTDREAM_DOCS_IMAGES`` (``make docs-images`` writes ``docs/img/``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analysis import tracking
from analysis.oip.render import OIPResult
from analysis.plots.images import panel_fraction
from analysis.plots.oip import TITLE_POINTS, oip_grid
from experiments.mlflow_ui import views
from tests.conftest import TINY
from tests.ui import free_port, wait_until_answers

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("LATENTDREAM_CHROMIUM", "/usr/bin/chromium"))
# Headless, no GPU, and nothing that phones home: the test must behave the same offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CARD = '[data-testid="experiment-view-compare-runs-card"]'
SECTION = '[data-testid="experiment-view-compare-runs-section-header"]'
IMAGE_KEY = tracking.oip_stem("conv3", "random")
# Two epochs, OIPs of all 128 conv3 maps after each (steps 0 and 1: the largest grid), nothing else after training;
# system metrics on (sampled every second), so the Compare page has them to pick from.
RUN = [*TINY, "trainer.max_epochs=2", "oip.every_n_epochs=1", "oip.steps=3", "oip.layers=[conv3]",
       "dream.enabled=false", "analysis.enabled=false", "tracking.log_model=false",
       "tracking.system_metrics=true", "trainer.enable_progress_bar=false"]
WIDTH = 1600  # px: the browser window of the issue


def _require_browser() -> None:
    if os.environ.get("LATENTDREAM_SKIP_UI") == "1":
        pytest.skip("LATENTDREAM_SKIP_UI=1")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium); "
                    "LATENTDREAM_SKIP_UI=1 skips this test")
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]'")


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _make_runs(path: Path) -> dict[str, str]:
    """The store in ``path`` (``mlflow.db``, ``mlruns/``, as ``latentdream`` makes it in a folder): two runs, their
    comparison, the view."""
    import mlflow

    from experiments.run.config import load_experiment
    from experiments.commands.runs import compare_runs
    from experiments.run.train import train

    uri = f"sqlite:///{path / 'mlflow.db'}"
    where = [f"tracking.tracking_uri={uri}", f"tracking.artifact_root={path / 'mlruns'}",
             f"tracking.checkpoint_dir={path / 'checkpoints'}"]
    os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"  # the tiny runs end within seconds
    with _chdir(path):  # the comparison's experiment puts its artifacts under ./mlruns
        ids = [train(load_experiment("cnn_mnist_bundled", [*RUN, *where, f"optim.lr={lr}",
                                                           f"tracking.run_name=lr_{lr}"]), command="pytest").run_id
               for lr in (0.05, 0.01)]
        comparison = compare_runs(ids, uri)
        client = mlflow.MlflowClient(uri)
        experiment = client.get_run(ids[0]).info.experiment_id
        assert views.publish_view(client, experiment) == views.VIEW_KEY
    os.environ.pop("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", None)
    return {"experiment": experiment, "run": ids[0], "runs": ids, "comparison": comparison,
            "comparisons": client.get_run(comparison).info.experiment_id}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    """``latentdream ui`` over the store, a browser page, and where screenshots go."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # the first page load compiles a large bundle on two busy cores
    path = tmp_path_factory.mktemp("ui_store")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ids = _make_runs(path)
    port = free_port()
    shots = Path(os.environ.get("LATENTDREAM_DOCS_IMAGES") or tempfile.mkdtemp(dir=path, prefix="shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    with open(path / "ui.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "experiments.commands.cli", "ui", "--port", str(port),
                                   "--workers", "1"], cwd=path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{base}/health", server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(dir=path, prefix="chromium-profile-"), executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS, headless=True, viewport={"width": WIDTH, "height": 1000},
                env={**env, "HOME": str(path)})
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                yield {**ids, "base": base, "page": page, "shots": shots, "log": path / "ui.log"}
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _close_assistant(page) -> None:
    """Close the MLflow Assistant side panel (it takes a third of the width), and wait until it is gone."""
    from playwright.sync_api import expect

    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
        expect(close).to_have_count(0)


def _card(page, title: str):
    return page.locator(CARD).filter(has=page.locator(f'h4[title="{title}"]'))


def _assert_image_shown(card, ratio: float = 1.0) -> None:
    """The card's first image has loaded, lies inside the card (bounding boxes nest) and at least ``ratio`` of it is
    in view as the page opens; then, scrolled within the card's own scroll area if need be, all of it."""
    from playwright.sync_api import expect

    card.scroll_into_view_if_needed()
    img = card.locator("img.rc-image-img").first
    expect(img).to_be_in_viewport(ratio=ratio)
    assert img.evaluate("e => e.complete && e.naturalWidth") > 0
    img.scroll_into_view_if_needed()  # MLflow centres an image in a square box inside the card's scroll area
    # at least as much as at first: a 128-map grid drawn readable is taller than the card's view, which scrolls
    expect(img).to_be_in_viewport(ratio=ratio)
    box, frame = img.bounding_box(), card.bounding_box()
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"], (box, frame)
    # it starts inside the card; a grid taller than the card continues on the card's own scroll
    assert frame["y"] <= box["y"] < frame["y"] + frame["height"], (box, frame)


def test_a_run_page_shows_the_oip_image_stepping_over_epochs(site):
    from playwright.sync_api import expect

    page = site["page"]
    page.goto(views.run_url(site["base"], site["experiment"], site["run"]))
    # MLflow sorts the run page's sections by name in the browser (the health summaries come before oip) and draws
    # a section's cards only once it is scrolled into view: scroll down until the OIP card exists
    card = _card(page, IMAGE_KEY)
    expect(page.locator(CARD).first).to_be_visible()
    for _ in range(40):
        if card.count():
            break
        page.mouse.move(800, 600)
        page.mouse.wheel(0, 500)
        page.wait_for_timeout(500)
    expect(card).to_be_visible()
    _close_assistant(page)
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(site["shots"] / "run_oip_images.png"), animations="disabled")
    # the run page captions each run's image with its params, which MLflow lets no server turn off, and centres it in
    # a square box: with four short params and a grid wider than tall, most of it shows at once, all of it on a
    # small scroll within the card (the experiment view, next test, shows it whole in an uncaptioned card)
    # conv3's 128 maps make a square grid, so half of it shows at once in the run page's small default cards (sized
    # by MLflow per browser), the rest on a scroll within the card; the chart view (next test) and the report show it
    # whole and readable
    _assert_image_shown(card, ratio=0.45)
    slider = card.locator('[role="slider"]')
    expect(slider).to_have_attribute("aria-valuemin", "0")
    expect(slider).to_have_attribute("aria-valuemax", "1")  # epochs 0 and 1
    assert slider.get_attribute("data-disabled") is None


def test_the_experiment_view_has_curves_first_both_runs_and_captionless_images(site):
    from playwright.sync_api import expect

    page = site["page"]
    assert views.experiment_url(site["base"], site["experiment"]) in site["log"].read_text()  # what ui printed
    page.goto(views.experiment_url(site["base"], site["experiment"]))
    expect(page.locator(SECTION).first).to_be_visible()
    _close_assistant(page)
    names = [t.split("\n")[0].strip() for t in page.locator(SECTION).all_inner_texts()]  # "val\n(2)\nAdd chart"
    assert names[:4] == ["train", "val", "test", "oip"], names
    loss = _card(page, tracking.VAL_LOSS)
    expect(loss.get_by_text(f"({tracking.VAL_LOSS})")).to_have_count(2)  # legend: "lr_0.05 (val/loss)", ...
    expect(loss.get_by_text(f"lr_0.05 ({tracking.VAL_LOSS})")).to_be_visible()
    page.screenshot(path=str(site["shots"] / "experiment_charts.png"), animations="disabled")
    # cards far below are not rendered until scrolled to: narrow the view to the image card instead
    page.get_by_placeholder("Search metric charts").fill(IMAGE_KEY)
    images = _card(page, IMAGE_KEY)
    expect(images.locator("img.rc-image-img")).to_have_count(2)  # one per run
    _assert_image_shown(images, ratio=0.6)  # drawn readable, conv3's grid is taller than the card: it scrolls
    assert "optim.lr=" not in images.inner_text()  # no params caption
    page.screenshot(path=str(site["shots"] / "experiment_oip_images.png"), animations="disabled")
    # readable: each panel >= 48 px on screen, its title >= 8 px (the figure's layout scaled to the drawn image)
    fig = oip_grid(_grid_of(128))
    fraction, png_width = panel_fraction(fig), fig.get_size_inches()[0] * tracking.figure_dpi(fig)
    for img in images.locator("img.rc-image-img").all():
        shown = img.bounding_box()["width"]
        assert shown * fraction >= 48, (shown, fraction)
        assert TITLE_POINTS * tracking.figure_dpi(fig) / 72 * shown / png_width >= 8, (shown, png_width)


def _grid_of(n: int) -> OIPResult:
    """An OIP result of ``n`` maps: the layout the callback draws for a layer of ``n`` maps."""
    zeros = np.zeros(n)
    return OIPResult(layer="conv3", init="random", maps=np.arange(n), patterns=np.random.default_rng(0).random(
        (n, 28, 28)), initial=zeros, final=zeros, activation=zeros, dead=zeros.astype(bool), history=zeros[None])


def test_the_compare_page_plots_val_loss_not_a_system_metric(site):
    from playwright.sync_api import expect

    page = site["page"]
    page.goto(views.compare_url(site["base"], site["experiment"], site["runs"]))
    plot = page.locator(".js-plotly-plot").first
    expect(plot).to_be_visible()
    _close_assistant(page)
    # parallel coordinates: one title per axis (SVG text: textContent, SVG has no innerText)
    axes = plot.locator("text.axis-title").evaluate_all("els => els.map(e => e.textContent)")
    assert tracking.VAL_LOSS in axes and not any(a.startswith("system/") for a in axes), axes
    page.screenshot(path=str(site["shots"] / "compare_page.png"), animations="disabled")


@pytest.mark.parametrize("which", ["run", "comparison"])
def test_each_report_opens_in_the_artifact_viewer_with_every_image(site, which):
    from playwright.sync_api import expect

    page = site["page"]
    experiment = site["experiment"] if which == "run" else site["comparisons"]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and m.location.get("url", "").startswith(
        "blob:") else None)
    page.goto("about:blank")
    page.goto(views.run_url(site["base"], experiment, site[which], tab=f"artifacts/{tracking.REPORT}"))
    frame = page.frame_locator("iframe.mlflow-html-iframe")
    expect(frame.locator("section#curves")).to_be_visible()
    _close_assistant(page)
    first = frame.locator("section h2").all_inner_texts()
    assert first[:2] == ["health", "curves"], first  # the report leads with the verdict and the curves
    images = frame.locator("img.zoomable")
    assert images.count() >= 1
    for img in images.all():
        img.scroll_into_view_if_needed()
        # an image still decoding (a loaded machine) gets up to 10 s; one that fails to load answers false at once
        assert img.evaluate("""e => (e.complete && e.naturalWidth > 0) || new Promise(done => {
            e.addEventListener('load', () => done(e.naturalWidth > 0)); e.addEventListener('error', () => done(false));
            setTimeout(() => done(e.complete && e.naturalWidth > 0), 10000); })"""), img.get_attribute("alt")
    frame.locator("header").scroll_into_view_if_needed()
    page.screenshot(path=str(site["shots"] / f"report_{which}.png"), animations="disabled")
    if which == "run":  # an OIP grid opens full size
        frame.locator("img.zoomable[alt^='oip/']").first.click()
        expect(frame.locator("#lightbox")).to_be_visible()
        page.screenshot(path=str(site["shots"] / "report_zoom.png"), animations="disabled")
    assert not errors, errors


def test_the_comparison_run_lists_its_compare_files(site):
    from playwright.sync_api import expect

    page = site["page"]
    figure = tracking.compare_oip_png("conv3_random", "maps0-31")
    page.goto("about:blank")  # a new load: a hash change alone keeps the file the viewer showed before
    page.goto(views.run_url(site["base"], site["comparisons"], site["comparison"], tab=f"artifacts/{figure}"))
    expect(page.get_by_text(tracking.COMPARE_DIR, exact=True).first).to_be_visible()
    _close_assistant(page)
    for path in (tracking.COMPARE_PARAMS_DIFF, tracking.COMPARE_SUMMARY, figure):
        expect(page.get_by_text(Path(path).name, exact=True).first).to_be_visible()
    preview = page.get_by_role("img", name=figure)  # the figure, previewed beside the tree
    expect(preview).to_be_visible()
    assert preview.evaluate("e => e.complete && e.naturalWidth") > 0
    page.screenshot(path=str(site["shots"] / "comparison_artifacts.png"), animations="disabled")
