"""The health verdict: known answers of the pure logic (numbers in, verdict out), the probe on deliberately broken
networks, the figures' titles, the settings' rules and the `runs` column."""

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from analysis import tracking
from analysis.health.probe import pc1_share, probe_autoencoder, probe_conv_maps
from analysis.health.settings import HealthSettings
from analysis.health.verdict import HealthNumbers, judge, loss_change, percent
from analysis.plots.health import flag_unhealthy
from experiments.commands import runs
from experiments.run.build import build_callbacks
from experiments.run.config import load_experiment
from latentdream.errors import InputError
from lightning_modules.networks import ConvAutoencoder, MnistCNN

S = HealthSettings()
HEALTHY_AE = HealthNumbers([0.05, 0.03, 0.025], saturated_outputs=0.4, pc1_share=0.12)


# --- the verdict -------------------------------------------------------------------------------------------------
def test_a_healthy_run_is_ok_with_its_numbers_as_metrics():
    verdict = judge(HEALTHY_AE, S)
    assert verdict.ok and verdict.tag == "ok"
    assert verdict.metrics() == {"health/ok": 1.0, "health/val_loss_change": pytest.approx(0.5),
                                 "health/saturated_outputs": 0.4, "health/pc1_share": 0.12}


def test_a_flat_val_loss_is_not_learning():
    verdict = judge(HealthNumbers([0.0850931, 0.0850931, 0.0850931 * (1 + 1e-5)]), S)
    assert verdict.tag == "not_learning: val/loss changed < 0.1 % over 3 epochs"
    assert verdict.metrics()["health/ok"] == 0.0 and verdict.metrics()["health/val_loss_change"] < 1e-4


def test_too_few_epochs_say_nothing_about_learning():
    assert judge(HealthNumbers([0.1, 0.1]), S).ok  # min_epochs=3
    assert not judge(HealthNumbers([0.1, 0.1]), HealthSettings(min_epochs=2)).ok


def test_a_loss_that_moved_just_enough_learns():
    assert judge(HealthNumbers([1.0, 0.9995, 0.9989]), S).ok  # 0.11 % > 0.1 %
    assert not judge(HealthNumbers([1.0, 0.9995, 0.9991]), S).ok  # 0.09 %


def test_a_decoder_stuck_at_black_is_saturated_and_collapsed():
    verdict = judge(HealthNumbers([0.085] * 4, saturated_outputs=0.9995, pc1_share=0.904), S)
    assert verdict.reasons == ("not_learning: val/loss changed < 0.1 % over 4 epochs",
                               "saturated: 99.95 % of decoder outputs at 0 or 1",
                               "collapsed: 1 principal component explains 90.4 % of the latent variance")
    assert verdict.tag == "; ".join(verdict.reasons)


def test_silent_names_the_worst_layer():
    numbers = HealthNumbers([0.3, 0.2, 0.1], silent_maps={"conv1": 0.0, "conv2": 0.25, "conv3": 0.6})
    verdict = judge(numbers, S)
    assert verdict.tag == "silent: 60 % of conv3's maps never fire on validation data"
    assert verdict.metrics()["health/silent_maps_conv2"] == 0.25
    assert judge(numbers, HealthSettings(max_silent=0.7)).ok


@pytest.mark.parametrize("values,expected", [([2.0, 1.0], 0.5), ([1.0, 1.0, 1.0], 0.0), ([0.0, 0.0], 0.0),
                                             ([1.0], None), ([1.0, float("nan")], None), ([-2.0, -1.0], 0.5)])
def test_loss_change_known_answers(values, expected):
    assert loss_change(values) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("fraction,text", [(0.6, "60 %"), (0.904, "90.4 %"), (0.001, "0.1 %"), (0.9996, "99.96 %"),
                                           (0.999999, "99.99 %"), (1.0, "100 %")])
def test_percent_never_rounds_up_to_100(fraction, text):
    assert percent(fraction) == text


@pytest.mark.parametrize("key,value", [("min_epochs", 0), ("max_saturated", 0.0), ("max_pc1_share", 1.5),
                                       ("max_silent", -0.1), ("saturation_margin", 0.5), ("min_loss_change", -1.0),
                                       ("max_images", 0), ("batch_size", 0)])
def test_bad_thresholds_name_the_key(key, value):
    with pytest.raises(InputError, match=rf"health\.{key}="):
        HealthSettings(**{key: value})


def test_thresholds_are_config_settings_and_the_check_can_be_switched_off():
    with pytest.raises(InputError, match=r"health\.max_silent=2"):
        load_experiment("cnn_mnist_bundled", ["health.max_silent=2"])
    names = lambda cfg: [type(c).__name__ for c in build_callbacks(cfg)]  # noqa: E731
    assert names(load_experiment("ae_case1_mnist_bundled", []))[0] == "HealthCheck"  # before the analyses
    assert "HealthCheck" not in names(load_experiment("cnn_mnist_bundled", ["health.enabled=false"]))


# --- the probe on deliberately broken networks ---------------------------------------------------------------------
def test_pc1_share_known_answers():
    rng = np.random.default_rng(0)
    line = torch.tensor(rng.normal(size=(200, 1)) * [[1.0, 2.0, -2.0]])  # all variance along one direction
    assert pc1_share(line) == pytest.approx(1.0)
    scaled = torch.tensor(rng.normal(size=(20000, 4)) * [3.0, 1.0, 1.0, 1.0])  # variances 9, 1, 1, 1
    assert pc1_share(scaled) == pytest.approx(9 / 12, abs=0.02)
    assert pc1_share(torch.ones(10, 5)) == 1.0  # identical vectors: nothing but collapse


def _tiny_ae():
    torch.manual_seed(0)
    return ConvAutoencoder(1, 16, [4, 8], [3, 3], [2, 2], [4], [3, 3], [2, 2], z_dim=8).eval()


def _batches(n=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(8, 1, size, size, generator=g) for _ in range(n)]


def test_a_decoder_stuck_at_black_saturates_every_output():
    ae = _tiny_ae()
    fresh = probe_autoencoder(ae, _batches(), "cpu", margin=1e-3)
    assert fresh["saturated_outputs"] < 0.01 and fresh["n_images"] == 24  # a fresh sigmoid sits near 0.5
    with torch.no_grad():
        ae.decoder[-2].bias.fill_(-1e4)  # the dead decoder: pre-sigmoid outputs far below 0
    dead = probe_autoencoder(ae, _batches(), "cpu", margin=1e-3)
    assert dead["saturated_outputs"] == 1.0 and dead["pc1_share"] == pytest.approx(fresh["pc1_share"])
    assert judge(HealthNumbers(saturated_outputs=dead["saturated_outputs"]), S).reasons[0].startswith("saturated")


def test_an_encoder_with_one_direction_is_collapsed():
    ae = _tiny_ae()
    with torch.no_grad():
        last = ae.encoder[-1]
        last.weight[1:] = 0.0  # every latent vector varies along component 0 only
    found = probe_autoencoder(ae, _batches(), "cpu", margin=1e-3, max_images=20)
    assert found["pc1_share"] == pytest.approx(1.0) and found["n_images"] == 20  # max_images cuts the pass


def test_maps_whose_bias_keeps_them_negative_never_fire():
    torch.manual_seed(0)
    cnn = MnistCNN().eval()
    batches = _batches(2, 28)
    fresh = probe_conv_maps(cnn, batches, "cpu")
    assert list(fresh) == ["conv1", "conv2", "conv3"] and all(0 <= v < 0.5 for v in fresh.values())
    with torch.no_grad():
        cnn.conv3.bias[:96] = -1e3  # 96 of 128 maps can never pass anything through their ReLU ...
        cnn.conv3.bias[96:] = 1e3  # ... and the other 32 always do
    assert probe_conv_maps(cnn, batches, "cpu") == {**fresh, "conv3": 0.75}
    assert probe_conv_maps(torch.nn.Linear(2, 2), batches, "cpu") == {}  # no named conv layers: nothing to say


# --- where the verdict shows ---------------------------------------------------------------------------------------
def test_an_unhealthy_figure_says_so_on_top_and_keeps_its_panels_size():
    fig = Figure(figsize=(10, 3), layout="constrained")
    fig.suptitle("PCA spectrum", fontsize=10)
    flag_unhealthy(fig, "saturated: 99.9 % of decoder outputs at 0 or 1")
    assert fig.get_suptitle().splitlines() == ["UNHEALTHY RUN: saturated: 99.9 % of decoder outputs at 0 or 1",
                                               "PCA spectrum"]
    assert tuple(fig.get_size_inches()) == pytest.approx((10, 3.3))
    narrow = flag_unhealthy(Figure(figsize=(3, 3)), "not_learning: val/loss changed < 0.1 % over 3 epochs")
    lines = narrow.get_suptitle().splitlines()  # no title before; wrapped to the figure's width
    assert len(lines) > 1 and " ".join(lines) == "UNHEALTHY RUN: not_learning: val/loss changed < 0.1 % over 3 epochs"
    assert tuple(narrow.get_size_inches()) == pytest.approx((3, 3 + 0.3 * len(lines)))
    plain = Figure(figsize=(4, 3))
    assert flag_unhealthy(plain, "ok").get_suptitle() == "" and flag_unhealthy(plain, None).get_suptitle() == ""


def test_runs_show_the_verdict_beside_the_status():
    found = pd.DataFrame({
        "run_id": ["r1", "r2", "r3"], "experiment_id": ["1"] * 3, "status": ["FINISHED"] * 3,
        "start_time": pd.to_datetime(["2026-01-02"] * 3, utc=True), "tags.mlflow.runName": ["a", "b", "c"],
        f"tags.{tracking.TAG_HEALTH}": ["ok", "not_learning: val/loss changed < 0.1 % over 3 epochs", None],
    })
    table = runs._select_columns(found, {"1": "cnn"})
    assert list(table.columns[:5]) == ["run_id", "experiment", "run_name", "status", "health"]
    text = runs.format_runs(table)
    assert "not_learning: val/loss changed < 0.1 % over 3 epochs" in text
    narrow = runs.format_runs(table, width=80)
    assert "health" in narrow.splitlines()[0] and "not_learning: val/loss …" in narrow
    assert "health" not in runs._select_columns(found.drop(columns=f"tags.{tracking.TAG_HEALTH}"), {"1": "cnn"})


# --- the demo checks its own runs ----------------------------------------------------------------------------------
def test_the_demo_names_each_unhealthy_run_and_fails(tmp_path, capsys):
    import mlflow

    from experiments.commands.demo import report_health

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("demo", artifact_location=str(tmp_path / "mlruns"))

    def run(name, **tags):
        return client.create_run(exp, run_name=name, tags=tags).info.run_id

    ids = {"cnn_sgd": run("cnn", health="ok"), "comparison": run("cmp"), "sweep": run("parent")}
    run("child-1", **{tracking.TAG_PARENT_RUN: ids["sweep"], "health": "ok"})
    assert report_health(ids, uri) == 0 and capsys.readouterr().out == ""
    ids["ae_case1"] = run("ae", health="saturated: 100 % of decoder outputs at 0 or 1")
    run("child-2", **{tracking.TAG_PARENT_RUN: ids["sweep"], "health": "silent: 60 % of conv3's maps never fire"})
    assert report_health(ids, uri) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("latentdream: error: demo run ") for line in lines)
    assert lines[0].endswith(f"ae_case1 (run {ids['ae_case1']}) is unhealthy: saturated: 100 % of decoder outputs "
                             "at 0 or 1")
    assert "sweep child child-2" in lines[1] and lines[1].endswith("silent: 60 % of conv3's maps never fire")
