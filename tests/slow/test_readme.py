"""The README's commands work: every line of its ```bash blocks, read from README.md at test time, runs in a
temporary folder (the local store ``./mlflow.db`` + ``./mlruns``), in order, so a README command that breaks fails CI.

* ``RUN_ID`` is a tiny autoencoder run where the line is about the latent analysis (``analyze``, ``latent``), else a
  tiny CNN run; ``RUN_A``/``RUN_B`` are two tiny CNN runs; ``EXPERIMENT`` is their experiment; ``photo.jpg`` is
  written from scikit-image's sample photos. Training and analysis lines get tiny settings appended.
* ``[...]`` after a space is optional: the line runs without and with it (``ui`` only with it).
* ``latentdream``/``.venv/bin/latentdream`` run in-process (``experiments.commands.cli.main``), ``ui`` (and ``make ui``) as
  a process that must answer ``/health`` and stop on SIGTERM; ``mlflow`` with this interpreter; ``export`` sets the
  environment of later lines; anything else goes to ``bash`` in the folder.
* Skipped: ``make`` targets that set up or run long jobs (``demo``, ``test``, ...), venv/pip setup lines, and lines
  reading real data (``data.root=/data/...``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.commands.cli import main
from tests.conftest import TINY
from tests.ui import free_port, wait_until_answers

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SKIPPED_MAKE = {"demo", "test", "test-fast", "test-ui", "docs-images", "bench", "setup", "system-deps", "clean"}
SETUP = re.compile(r"^(source |\. )\S*activate\b|^(\S*/)?pip3? |^python3? -m (venv|pip)\b")
# Tiny runs and analyses, appended to the lines that train or analyse (later overrides win).
SMALL = [*TINY, "tracking.system_metrics=false", "trainer.enable_progress_bar=false", "analysis.n_random=500",
         "analysis.n_scatter=50", "analysis.n_generate=4", "analysis.z_sample=100", "oip.steps=2", "oip.maps=[0,1]",
         "dream.cycles=1", "dream.steps=2", "dream.steps_per_octave=2", "dream.octaves=2", "dream.max_side=64"]
SHRUNK = {"train", "demo", "analyze", "oip", "dream"}
OPTIONAL = re.compile(r"(?<=\s)\[([^\]]*)\]")  # " [EXPERIMENT]", not "analysis.b=[1,2]"


# --- reading the README ------------------------------------------------------------------------------------------
def strip_comment(line: str) -> str:
    """``line`` without a shell comment: ``#`` at the start of a word, outside quotes (``/#/`` in a URL stays)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def bash_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks: continuations joined, comments and ``$`` prompts removed."""
    lines, block, pending = [], False, ""
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            block = not block and raw.strip().removeprefix("```").strip() in ("bash", "sh", "shell", "console")
            continue
        if not block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        line = strip_comment(line).removeprefix("$ ")
        if line:
            lines.append(line)
    return lines


def variants(line: str) -> list[str]:
    """``line`` without and with its optional ``[...]`` parts (only with them for ``ui``, which starts a server)."""
    if not OPTIONAL.search(line):
        return [line]
    full = OPTIONAL.sub(lambda m: m.group(1), line)
    bare = re.sub(r"\s+", " ", OPTIONAL.sub("", line)).strip()
    return [full] if re.search(r"\bui\b", line) else [bare, full]


def substitute(line: str, names: dict[str, str]) -> str:
    """Put the tiny runs' ids in place of the README's placeholders."""
    run = names["ae"] if re.search(r"\banalyze\b|\blatent\b", line) else names["cnn_a"]
    for word, value in (("RUN_ID", run), ("RUN_A", names["cnn_a"]), ("RUN_B", names["cnn_b"]),
                        ("EXPERIMENT", names["experiment"])):
        line = re.sub(rf"\b{word}\b", value, line)
    return line


# --- running one line --------------------------------------------------------------------------------------------
def _check(ok: bool, line: str, detail: str) -> None:
    if not ok:
        pytest.fail(f"README line {line!r}: {detail}", pytrace=False)


def run_ui(args: list[str], line: str, cwd: Path) -> None:
    """Start ``latentdream ui`` (on a free port), wait for ``/health``, SIGTERM it: it must stop with exit 0."""
    port = str(free_port())
    args = [*args[:args.index("--port") + 1], port, *args[args.index("--port") + 2:]] if "--port" in args \
        else [*args, "--port", port]
    with open(cwd / "ui.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "experiments.commands.cli", *args, "--workers", "1"], cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/health", proc)
    except (RuntimeError, TimeoutError) as err:
        _check(False, line, f"{err}\n{(cwd / 'ui.log').read_text()[-2000:]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    _check(code == 0, line, f"ui exited {code} on SIGTERM")


def run_line(line: str, cwd: Path) -> str:
    """Run one substituted command line; returns what was done (``ran``, ``skipped``)."""
    words = shlex.split(line)
    program = Path(words[0]).name
    if words[0] == "export":
        for assignment in words[1:]:
            key, _, value = assignment.partition("=")
            os.environ[key] = os.path.expandvars(value)
    elif program == "make":
        target = words[1] if len(words) > 1 else ""
        if target in SKIPPED_MAKE:
            return "skipped"
        _check(target == "ui", line, f"no rule for `make {target}` in this test (tests/slow/test_readme.py)")
        run_ui(["ui", *words[2:]], line, cwd)
    elif program == "latentdream" and words[1:2] == ["ui"]:
        run_ui(words[1:], line, cwd)
    elif program == "latentdream":
        argv = [*words[1:], *SMALL] if words[1:2] and words[1] in SHRUNK else words[1:]
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse
            code = stop.code
        _check(code == 0, line, f"exited {code}")
    else:
        cmd = [sys.executable, "-m", "mlflow", *words[1:]] if program == "mlflow" else ["bash", "-c", line]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        _check(done.returncode == 0, line, f"exited {done.returncode}: {done.stderr[-2000:]}")
    return "ran"


# --- the test ----------------------------------------------------------------------------------------------------
def _tiny_runs() -> dict[str, str]:
    from experiments.run.config import load_experiment
    from experiments.run.train import train

    def run(name: str, *extra: str) -> str:
        return train(load_experiment(name, [*SMALL, *extra]), command="pytest (README)").run_id

    return {"cnn_a": run("cnn_mnist_bundled"), "cnn_b": run("cnn_mnist_bundled", "optim.lr=0.01"),
            "ae": run("ae_case1_mnist_bundled"), "experiment": "cnn_mnist_bundled"}


def _photo(path: Path) -> None:
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).resize((128, 128)).save(path, quality=90)


def test_every_readme_command_runs(tmp_path, monkeypatch):
    lines = bash_lines(README.read_text())
    assert len(lines) >= 5, "README.md has (almost) no ```bash command lines: did its format change?"
    saved = os.environ.copy()  # `export` lines and the CLI's own defaults must not leak into other tests
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PWD", str(tmp_path))
    try:
        names = _tiny_runs()
        _photo(tmp_path / "photo.jpg")
        done = []
        for line in lines:
            if "data.root=/data/" in line or SETUP.search(line):
                continue
            for variant in variants(line):
                done.append(run_line(substitute(variant, names), tmp_path))
        assert done.count("ran") >= 5
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_reading_the_readme_blocks():
    text = ("intro\n```bash\n$ latentdream runs [EXPERIMENT]   # a table\nlatentdream ui [--port 5000]\n"
            "open 'http://x/#/experiments'  # '#' in a URL stays\nlatentdream analyze RUN_ID analysis.b=[1,2] \\\n"
            "  analysis.n_bins=20\n```\n```python\nignored()\n```\n")
    lines = bash_lines(text)
    assert lines == ["latentdream runs [EXPERIMENT]", "latentdream ui [--port 5000]",
                     "open 'http://x/#/experiments'", "latentdream analyze RUN_ID analysis.b=[1,2] analysis.n_bins=20"]
    assert variants(lines[0]) == ["latentdream runs", "latentdream runs EXPERIMENT"]
    assert variants(lines[1]) == ["latentdream ui --port 5000"] and variants(lines[3]) == [lines[3]]
    names = {"ae": "AE", "cnn_a": "A", "cnn_b": "B", "experiment": "cnn"}
    assert substitute(lines[3], names).startswith("latentdream analyze AE ")
    assert substitute("latentdream compare RUN_A RUN_B", names) == "latentdream compare A B"
    assert substitute(".venv/bin/latentdream oip RUN_ID layer=conv3", names) == ".venv/bin/latentdream oip A layer=conv3"
