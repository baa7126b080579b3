"""SIGTERM honoured between units of work (latentdream.stopping): the handler records the signal, every long loop of
the analyses checks it, and whoever owns a run ends it KILLED; a write is never cut half-way."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import replace

import pytest
import torch

from analysis.callbacks.dream import record_dreams
from analysis.callbacks.latent import record_latent_analysis
from analysis.callbacks.oip import record_oips
from analysis.settings import DreamSettings, LatentSettings, OIPSettings
from experiments.run.reporting import reported
from experiments.run.store import ended
from latentdream import stopping
from latentdream.stopping import StopRequested, check_stop
from lightning_modules.networks import ConvAutoencoder, MnistCNN
from tests.unit.test_store import FakeClient  # the run's end recorded, as in the store's own tests


class RecordingWriter:
    """Stands in for tracking.RunWriter: records every write (no store needed to see that none happened)."""

    def __init__(self):
        self.writes = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.writes.append((name, args[0] if args else None))


@pytest.fixture(autouse=True)
def no_stop_left():
    stopping.clear_stop()
    yield
    stopping.clear_stop()


def _sigterm_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


def test_check_stop_raises_only_after_a_request_with_the_shell_exit_code():
    check_stop()
    stopping.request_stop(signal.SIGTERM)
    with pytest.raises(StopRequested) as caught:
        check_stop()
    assert caught.value.code == 143 and caught.value.signum == signal.SIGTERM
    assert not isinstance(caught.value, Exception)  # `except Exception` blocks do not swallow it


def test_the_handler_raises_at_once_outside_a_deferred_region_and_only_records_inside():
    with stopping.handle_signals():
        with pytest.raises(StopRequested):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
        stopping.clear_stop()
        with stopping.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert stopping.stop_requested() == signal.SIGTERM  # recorded, nothing raised
            with pytest.raises(StopRequested):
                check_stop()
    assert signal.getsignal(signal.SIGTERM) is not stopping._on_signal  # restored


def _cnn() -> MnistCNN:
    torch.manual_seed(0)
    return MnistCNN()


@pytest.mark.parametrize("analysis", ["oip", "dream_seed", "dream_octaves", "dream_tiled"])
def test_a_sigterm_stops_oips_and_every_dream_mode_between_steps_and_nothing_is_written(analysis):
    writer = RecordingWriter()
    if analysis == "oip":  # a million steps: minutes of work, unless the signal is honoured
        work = lambda: record_oips(writer, _cnn(), OIPSettings(layers=["conv1"], steps=10**6), step=0, progress=False)
    else:
        mode = analysis.removeprefix("dream_")
        settings = replace(DreamSettings(), modes=[mode], steps=10**6, cycles=10**6, steps_per_octave=10**6)
        work = lambda: record_dreams(writer, _cnn(), settings, step=0, progress=False)
    start = time.monotonic()
    with stopping.handle_signals():
        timer = _sigterm_after(1.0)
        try:
            with pytest.raises(StopRequested):
                work()
        finally:
            timer.cancel()
    assert time.monotonic() - start < 20
    assert writer.writes == []


def test_a_sigterm_stops_the_latent_analysis_while_it_encodes():
    torch.manual_seed(0)
    network = ConvAutoencoder(in_channels=1, image_size=32, z_dim=4, encoder_filters=[4, 4], encoder_kernels=[3, 3],
                              encoder_strides=[2, 2], decoder_filters=[4], decoder_kernels=[3, 3],
                              decoder_strides=[2, 2])
    endless = (torch.rand(8, 1, 32, 32) for _ in itertools.count())  # never ends unless the stop is checked
    writer = RecordingWriter()
    with stopping.handle_signals():
        timer = _sigterm_after(1.0)
        try:
            with pytest.raises(StopRequested):
                record_latent_analysis(writer, network, endless, LatentSettings(), step=0, progress=False)
        finally:
            timer.cancel()
    assert writer.writes == []


def test_a_run_owned_by_a_command_ends_killed_and_the_command_exits_143_with_one_line(capsys):
    client = FakeClient()

    def command() -> int:
        with ended(client, "run1"):
            stopping.request_stop(signal.SIGTERM)
            check_stop()
        return 0

    assert reported(command) == 143
    assert client.status == "KILLED"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["latentdream: stopped by SIGTERM; run run1 marked KILLED"]


def test_an_analysis_command_stopped_exits_143_and_leaves_the_source_run_alone(capsys):
    def command() -> int:
        stopping.request_stop(signal.SIGTERM)
        check_stop()
        return 0

    assert reported(command) == 143
    assert capsys.readouterr().err.strip() == "latentdream: stopped by SIGTERM; what was logged before stays"
