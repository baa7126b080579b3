"""``latentdream --help`` opens with a plain sentence; the UI's server is started without Starlette's deprecation
warning (MLflow's call, not the user's business)."""

from __future__ import annotations

import os
import subprocess
import sys

from experiments.commands.cli import DESCRIPTION, make_parser
from experiments.mlflow_ui.ui import SERVER_WARNING_FILTERS, server_env


def test_help_opens_with_a_plain_sentence():
    assert DESCRIPTION.endswith(".") and "``" not in DESCRIPTION and "\n" not in DESCRIPTION
    text = make_parser().format_help()
    assert DESCRIPTION in " ".join(text.split())  # argparse rewraps it, nothing is cut


def test_the_server_environment_filters_starlettes_warning_and_keeps_the_users():
    env = server_env({"PYTHONWARNINGS": "error::ResourceWarning", "PATH": "/bin"})
    assert env["PYTHONWARNINGS"] == f"error::ResourceWarning,{SERVER_WARNING_FILTERS}"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["PATH"] == "/bin"
    code = ("import warnings\nclass StarletteDeprecationWarning(UserWarning): pass\n"
            "warnings.warn('run_until_first_complete is deprecated and will be removed', StarletteDeprecationWarning)")
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, **server_env({})}, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and "deprecated" not in run.stderr
