"""``latentdream ui`` without a real server: a busy port, the network warning, the printed links, the command line.
Stopping a real server (no orphans) is in tests/slow/test_ui_server.py."""

from __future__ import annotations

import socket

import pytest

from experiments.mlflow_ui import ui
from experiments.commands.cli import main
from tests.ui import free_port


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_port_is_one_line_with_the_port_hint_and_exit_2(busy_port, capsys, monkeypatch):
    monkeypatch.setattr(ui.subprocess, "Popen", lambda *a, **k: pytest.fail("the server must not start"))
    assert main(["ui", "--port", str(busy_port)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert f"port {busy_port} on 127.0.0.1 is already in use" in out.err and "--port" in out.err


@pytest.mark.parametrize("argv, message", [
    (["ui", "--port", "70000"], "--port 70000 is not a TCP port"),
    (["ui", "--host", "no-such-host.invalid"], "--host 'no-such-host.invalid' is not an address"),
    (["ui", "--workers", "0"], "--workers 0"),
])
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_loopback_hosts_and_link_hosts():
    assert ui.is_loopback("127.0.0.1") and ui.is_loopback("localhost") and ui.is_loopback("::1")
    assert not ui.is_loopback("0.0.0.0")
    assert ui.browse_host("0.0.0.0") == "127.0.0.1" and ui.browse_host("::1") == "[::1]"


PORT = free_port()


class FakeServer:
    """Stands in for the ``mlflow server`` process: records how it was started, exits at once."""

    started: list = []

    def __init__(self, cmd, **kwargs):
        FakeServer.started.append((cmd, kwargs))
        self.pid = -1

    def wait(self, timeout=None):
        return 0

    def poll(self):
        return 0


def _serve(monkeypatch, tmp_path, **kwargs):
    FakeServer.started = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(ui.subprocess, "Popen", FakeServer)
    monkeypatch.setattr(ui, "experiment_links", lambda base, uri: [("cnn", f"{base}/#/experiments/1/runs?x")])
    return ui.serve(port=PORT, **kwargs)


def test_a_network_host_warns_and_passes_allowed_hosts(monkeypatch, tmp_path, capsys):
    assert _serve(monkeypatch, tmp_path, host="0.0.0.0", allowed_hosts="box.lan:5000") == 0
    err = capsys.readouterr().err
    assert "warning: --host 0.0.0.0 opens the store to the network" in err and "--allowed-hosts" in err
    cmd, kwargs = FakeServer.started[0]
    assert cmd[cmd.index("--allowed-hosts") + 1] == "box.lan:5000" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert kwargs["start_new_session"] is True  # its own process group, stopped as a whole


def test_loopback_prints_links_to_the_model_training_ui_and_no_warning(monkeypatch, tmp_path, capsys):
    assert _serve(monkeypatch, tmp_path) == 0
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.splitlines()
    base = f"http://127.0.0.1:{PORT}"
    assert lines[0].startswith(f"MLflow UI on {base} ") and f"sqlite:///{tmp_path}/mlflow.db" in lines[0]
    assert lines[1].strip() == f"experiments: {base}/#/experiments?workflowType=machine_learning"
    assert lines[2].strip() == f"cnn: {base}/#/experiments/1/runs?x"
    cmd, kwargs = FakeServer.started[0]
    assert cmd[cmd.index("--default-artifact-root") + 1] == str(tmp_path / "mlruns")
    assert kwargs["env"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_no_links_for_a_store_that_does_not_exist_yet(tmp_path):
    assert ui.experiment_links("http://x", f"sqlite:///{tmp_path}/mlflow.db") == []
    assert not (tmp_path / "mlflow.db").exists()
