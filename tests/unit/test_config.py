"""Experiment files compose, type-check and reject bad values with one line naming the key."""

import pytest
import torch

from experiments.run.config import available_experiments, flatten, load_experiment
from latentdream.errors import InputError

SHIPPED = ["cnn_mnist", "cnn_mnist_bundled", "ae_case1_celeba", "ae_case2_celeba", "ae_case1_mnist_bundled"]
ROOT = ["data.root=/somewhere"]


def test_all_issue_experiments_ship():
    assert set(SHIPPED) <= set(available_experiments())


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_experiment_loads(name):
    cfg = load_experiment(name, ROOT)
    assert cfg.name == name
    assert cfg.trainer.accelerator == "auto"


def test_case_two_keeps_reference_architecture_and_takes_overrides():
    cfg = load_experiment("ae_case2_celeba", [*ROOT, "model.act=selu", "optim.lr=5e-4"])
    assert list(cfg.model.encoder_filters) == [64, 64, 128, 128]
    assert list(cfg.model.encoder_kernels) == [5, 5, 3, 3]
    assert list(cfg.model.decoder_kernels) == [3, 3, 5, 5]
    assert cfg.model.act == "selu" and cfg.optim.lr == pytest.approx(5e-4)


@pytest.mark.parametrize("name", ["ae_case1_celeba", "ae_case2_celeba"])
def test_autoencoders_take_the_references_leaky_slope_and_pass_it_to_the_network(name):
    from experiments.run.build import build_network

    assert load_experiment(name, ROOT).model.leaky_slope == pytest.approx(0.3)  # Keras' LeakyReLU default
    cfg = load_experiment(name, [*ROOT, "model.leaky_slope=0.05"])
    network = build_network(cfg, in_channels=3, image_size=64)
    assert {m.negative_slope for m in network.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.05}


def test_cnn_experiment_has_sgd_momentum_l2_and_schedule():
    cfg = load_experiment("cnn_mnist", ROOT)
    assert cfg.optim.name == "sgd" and cfg.optim.momentum > 0 and cfg.optim.weight_decay > 0
    assert cfg.scheduler.name != "none"
    assert list(cfg.model.conv_filters) == [32, 64, 128]


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["model.actt=relu"], "model.actt"),
        (["optimm.lr=1"], "optimm"),
        (["optim.lr=-1"], "optim.lr=-1"),
        (["optim.lr=abc"], "optim.lr"),
        (["data.image_size=30"], "data.image_size=30"),
        (["model.act=tanh"], "model.act='tanh'"),
        (["model.leaky_slope=1.5"], "model.leaky_slope=1.5"),
        (["model.leaky_slope=-0.1"], "model.leaky_slope=-0.1"),
        (["optim.name=lbfgs"], "optim.name='lbfgs'"),
        (["analysis.b=[]"], "analysis.b"),
        (["analysis.b=[1,-2]"], "analysis.b"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0"),
        (["notakeyvalue"], "key=value"),
    ],
)
def test_bad_values_name_the_key(overrides, fragment):
    with pytest.raises(InputError) as err:
        load_experiment("ae_case1_celeba", [*ROOT, *overrides])
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_unknown_experiment_lists_the_available_ones():
    with pytest.raises(InputError, match="cnn_mnist_bundled"):
        load_experiment("no_such_experiment")


def test_celeba_needs_a_root():
    with pytest.raises(InputError, match="data.root"):
        load_experiment("ae_case1_celeba")


def test_flatten_gives_dotted_params_for_every_value():
    params = flatten(load_experiment("cnn_mnist_bundled"))
    assert params["optim.name"] == "sgd"
    assert params["model.conv_filters"] == "[32, 64, 128]"
    assert params["analysis.b"] == "[1.0, 1.5, 2.0, 3.0, 12.0]"
    assert all(isinstance(v, str) for v in params.values())
