"""The UI's watchdog: the group it leads stops when the process that started it dies, also by SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "experiments.mlflow_ui.watchdog", sys.executable, "-c",
                          "import time; time.sleep(600)"], stdin=subprocess.PIPE, start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_group_stops_when_its_starter_is_sigkilled():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    try:
        watchdog = psutil.Process(int(parent.stdout.readline()))
        deadline = time.monotonic() + 30
        while not watchdog.children() and time.monotonic() < deadline:
            time.sleep(0.1)
        group = [watchdog, *watchdog.children(recursive=True)]
        assert len(group) == 2  # the watchdog and the command it runs
        parent.kill()  # SIGKILL: no handler of the parent runs
        parent.wait(timeout=10)
        gone, alive = psutil.wait_procs(group, timeout=15)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if parent.poll() is None:
            parent.kill()
