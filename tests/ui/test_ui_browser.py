"""The MLflow UI in a real headless Chromium: two finished runs, select both, compare, see the val/loss chart and the
params table. Needs Debian's ``chromium`` and the ``playwright`` Python package (``make test-ui`` installs both);
skipped with the reason when either is missing. Leaves a screenshot in ``docs/img/compare.png``."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

from experiments.config import load_experiment
from experiments.train import train
from tests.conftest import TINY
from tests.ui import mlflow_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "compare.png"
# Headless, no GPU, and nothing that phones home: the test must behave the same offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} missing (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="Python package playwright missing (pip install playwright)"),
]


def _train_two_runs(path: Path) -> tuple[str, list[str]]:
    uri = f"sqlite:///{path / 'mlflow.db'}"
    common = [*TINY, "trainer.max_epochs=2", "oip.enabled=false", "dream.enabled=false", "analysis.enabled=false",
              "tracking.log_model=false", f"tracking.tracking_uri={uri}", f"tracking.artifact_root={path / 'mlruns'}",
              f"tracking.checkpoint_dir={path / 'checkpoints'}", "tracking.system_metrics=false",
              "trainer.enable_progress_bar=false"]
    ids = [train(load_experiment("cnn_mnist_bundled", [*common, f"optim.lr={lr}", f"tracking.run_name=lr_{lr}"]),
                 command="pytest").run_id for lr in (0.05, 0.01)]
    return uri, ids


def test_compare_view_shows_val_loss_chart_and_params(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # the first page load compiles a large bundle on two busy cores

    import mlflow

    uri, ids = _train_two_runs(tmp_path)
    experiment_id = mlflow.MlflowClient(uri).get_run(ids[0]).info.experiment_id
    with mlflow_server(uri, tmp_path / "mlruns", tmp_path / "server.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-"), executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1400, "height": 900},
            env={**os.environ, "HOME": str(tmp_path)})
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/#/experiments/{experiment_id}/runs", wait_until="load")
            for name in ("lr_0.05", "lr_0.01"):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            boxes = page.get_by_label("Press Space to toggle row selection")
            expect(boxes).to_have_count(2)
            for i in range(2):
                boxes.nth(i).check(force=True)  # ag-grid draws its own box over the input
            page.get_by_role("button", name="Compare", exact=True).click()

            page.wait_for_url("**/compare-runs?**")
            assert all(run_id in page.url for run_id in ids)
            expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible()
            # the parallel-coordinates chart, with val/loss as one of its axes
            chart = page.locator(".js-plotly-plot").first
            expect(chart).to_be_visible()
            expect(chart.get_by_text("val/loss").first).to_be_attached()
            # the params table: the differing learning rates side by side
            row = page.locator("tr", has=page.get_by_text("optim.lr", exact=True)).first
            expect(row).to_contain_text("0.05")
            expect(row).to_contain_text("0.01")
            expect(page.get_by_text("Parameters", exact=True).first).to_be_visible()

            close = page.get_by_role("button", name="Close")  # the assistant side panel hides half the page
            if close.count():
                close.first.click()
                page.wait_for_timeout(500)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
