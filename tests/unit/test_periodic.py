"""The analysis callbacks' timing: every n-th epoch (not the last) and once at the end, never twice per epoch."""

from types import SimpleNamespace

import pytest

from analysis.callbacks.periodic import PeriodicAnalysis
from analysis.settings import OIPSettings
from latentdream.errors import InputError


class Recorder(PeriodicAnalysis):
    def __init__(self, every_n_epochs):
        super().__init__(OIPSettings(every_n_epochs=every_n_epochs))
        self.epochs, self.finals = [], []

    def record(self, trainer, pl_module, writer, epoch, final):
        self.epochs.append(epoch)
        self.finals.append(final)


def _fit(callback, max_epochs, monkeypatch):
    monkeypatch.setattr("analysis.callbacks.periodic.writer_for", lambda trainer: object())
    trainer = SimpleNamespace(max_epochs=max_epochs, current_epoch=0)
    for epoch in range(max_epochs):
        trainer.current_epoch = epoch
        callback.on_train_epoch_end(trainer, None)
    trainer.current_epoch = max_epochs
    callback.on_train_end(trainer, None)
    return callback.epochs


@pytest.mark.parametrize("every,expected", [(0, [4]), (1, [0, 1, 2, 3, 4]), (2, [1, 3, 4]), (3, [2, 4])])
def test_records_every_n_epochs_and_at_the_end_once(every, expected, monkeypatch):
    recorder = Recorder(every)
    assert _fit(recorder, 5, monkeypatch) == expected
    assert recorder.finals == [False] * (len(expected) - 1) + [True]  # only the end of training is the full one


def test_nothing_without_a_writer(monkeypatch):
    callback = Recorder(1)
    monkeypatch.setattr("analysis.callbacks.periodic.writer_for", lambda trainer: None)
    callback.on_train_end(SimpleNamespace(max_epochs=2, current_epoch=2), None)
    assert callback.epochs == []


def test_negative_period_is_refused():
    with pytest.raises(InputError, match=r"oip\.every_n_epochs=-1"):
        Recorder(-1)
