"""The computation stays pure: analysis and data-reading modules import neither Lightning nor MLflow."""

import subprocess
import sys

PURE = [
    "lightning_modules.networks", "lightning_modules.data.idx", "lightning_modules.data.face_cache",
    "lightning_modules.data.splits", "lightning_modules.data.arrays",
    "analysis.latent_stats", "analysis.encode", "analysis.oip.render", "analysis.oip.ascent", "analysis.dream",
    "analysis.plots.latent", "analysis.plots.images", "analysis.plots.oip", "analysis.plots.dream",
]


def test_pure_modules_import_neither_lightning_nor_mlflow():
    code = (
        "import sys, importlib\n"
        f"for name in {PURE!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'mlflow'))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"pure modules pulled in: {out.stdout.strip()[:300]}"
