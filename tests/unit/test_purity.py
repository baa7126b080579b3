"""The computation stays pure: analysis and data-reading modules import neither Lightning nor MLflow, and the
latent statistics not even torch."""

import subprocess
import sys

PURE = [
    "latentdream.errors", "lightning_modules.networks", "lightning_modules.data.idx",
    "lightning_modules.data.face_cache", "lightning_modules.data.splits", "lightning_modules.data.arrays",
    "analysis.settings", "analysis.eval_mode", "analysis.latent", "analysis.encode", "analysis.oip",
    "analysis.dream", "analysis.plots.latent", "analysis.plots.latent_paths", "analysis.plots.images",
    "analysis.plots.oip", "analysis.plots.dream",
    "analysis.plots.compare", "analysis.sweep_stats", "analysis.plots.sweep", "experiments.sweeps.grid",
    "analysis.oip.examples", "analysis.oip.predictions", "analysis.plots.mosaic", "analysis.compare.cka",
    "analysis.compare.matching", "analysis.compare.probe",
    "analysis.health.settings", "analysis.health.verdict", "analysis.health.probe", "analysis.plots.health",
    "experiments.reports.page",
]


def _imported_after(modules: list[str], tops: tuple[str, ...]) -> str:
    """Space-separated names of the modules of packages ``tops`` that importing ``modules`` pulls in."""
    code = (
        "import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {tops!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pure_modules_import_neither_lightning_nor_mlflow():
    bad = _imported_after(PURE, ("lightning", "pytorch_lightning", "mlflow"))
    assert bad == "", f"pure modules pulled in: {bad[:300]}"


def test_latent_statistics_and_their_figures_need_no_torch():
    assert _imported_after(["analysis.latent", "analysis.plots.latent", "analysis.plots.latent_paths"], ("torch",)) == ""
    assert _imported_after(["analysis.oip"], ("torch",)) != ""  # the check does see an import


def test_the_command_line_and_config_load_without_lightning_or_mlflow():
    # every command starts with these; bad input must fail in a fraction of the seconds Lightning takes to import
    assert _imported_after(["experiments.commands.cli", "experiments.run.config", "experiments.run.store"],
                           ("lightning", "pytorch_lightning", "mlflow")) == ""
