"""Optimizer and schedule factories; the L2 penalty spares biases."""

import pytest
import torch

from lightning_modules.networks import MnistCNN
from latentdream.errors import InputError
from lightning_modules.optim import (OptimizerSettings, ScheduleSettings, make_optimizer_factory, make_scheduler_factory,
                                     weight_decay_groups)


def test_weight_decay_applies_to_weights_not_biases():
    net = MnistCNN()
    decay, no_decay = weight_decay_groups(net, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))
    assert net.conv1.bias in no_decay["params"]


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers(name, cls):
    opt = make_optimizer_factory(OptimizerSettings(name=name, lr=0.1))(weight_decay_groups(MnistCNN(), 1e-3))
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.1


def _lrs(name, epochs=6, steps_per_epoch=1, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    factory = make_scheduler_factory(ScheduleSettings(name=name, **kw), monitor="val/loss")
    sched = factory(opt, epochs, epochs * steps_per_epoch)["scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs():
    assert _lrs("step", step_size=2, gamma=0.5) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_cosine_schedule_decays_monotonically_to_min():
    lrs = _lrs("cosine", epochs=6)
    assert lrs[0] == 1 and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_onecycle_rises_then_falls():
    lrs = _lrs("onecycle", epochs=20)
    peak = lrs.index(max(lrs))
    assert 0 < peak < 19 and lrs[0] < max(lrs) and lrs[-1] < max(lrs)


def test_plateau_schedule_monitors_the_given_metric_and_none_means_none():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert make_scheduler_factory(ScheduleSettings(name="plateau"), monitor="val/loss")(opt, 5, 5)["monitor"] == "val/loss"
    assert make_scheduler_factory(ScheduleSettings(name="none"), monitor="val/loss") is None


@pytest.mark.parametrize("settings,key", [(lambda: OptimizerSettings(lr=0), "optim.lr=0"),
                                          (lambda: OptimizerSettings(betas=[0.9]), "optim.betas"),
                                          (lambda: ScheduleSettings(factor=1.5), "scheduler.factor=1.5")])
def test_settings_refuse_bad_values_naming_the_key(settings, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.").replace("[", r"\[")):
        settings()
