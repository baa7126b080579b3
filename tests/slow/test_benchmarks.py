"""Every benchmark script still runs (tiny sizes) and prints its ratio line: the scripts are not imported by the
product, so nothing else would notice an API change breaking them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY_ARGS = {
    "ae_seeds.py": ["--seeds", "1", "--epochs", "1", "--max-batches", "3", "--cases", "2"],
    "celeba_cache.py": ["--n", "48", "--min-seconds", "0.05"],
    "dream.py": ["--size", "84", "--steps", "1", "--octave-size", "64", "--octave-steps", "1", "--train-epochs", "0",
                 "--repeats", "1"],
    "latent_analysis.py": ["--n-random", "500", "--dim", "8", "--repeats", "1"],
    "oip_batch.py": ["--steps", "2", "--train-steps", "5", "--repeats", "1", "--val", "64", "--render-steps", "2"],
    "sweep_config_check.py": ["--side", "3", "--sample", "3"],
    "sweep_dispatch.py": ["--children", "1"],
    "sweep_nodes.py": ["--children", "2", "--batches", "1"],
    "throughput.py": ["--images", "512", "--repeats", "1", "--warmup", "1", "--bf16"],
}

pytestmark = pytest.mark.slow


def test_every_benchmark_has_tiny_arguments_here():
    assert sorted(p.name for p in BENCHMARKS.glob("[!_]*.py")) == sorted(TINY_ARGS)


@pytest.mark.parametrize("script", sorted(TINY_ARGS))
def test_benchmark_runs_and_reports_a_ratio(script, tmp_path):
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *TINY_ARGS[script]], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert any(word in out.stdout for word in ("ratio", "speed-up")), out.stdout
