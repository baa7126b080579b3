"""Autoencoder case I trained briefly on real digits: every latent artifact exists and parses, metrics are in the
run; ``latentdream analyze`` adds the analysis to the run again and refuses bad input without touching it."""

import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from experiments.commands.analyze import analyze
from experiments.commands.cli import main
from experiments.run.config import load_experiment
from experiments.run.train import train
from tests.conftest import TINY

pytestmark = pytest.mark.slow

FIGURES = ["histograms.png", "dominant_fits.png", "radius.png", "correlation_scatter.png", "pca_spectrum.png",
           "generated_uniform.png", "generated_gaussian.png", "generated_multivariate.png", "traversals.png",
           "interpolations.png", "mahalanobis.png"]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """One briefly trained autoencoder run, shared by this module's tests (training is the slow part)."""
    path = tmp_path_factory.mktemp("ae_store")
    uri = f"sqlite:///{path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = load_experiment("ae_case1_mnist_bundled", [*TINY, "analysis.n_random=5000", "tracking.system_metrics=false",
                                                         "trainer.enable_progress_bar=false"])
        result = train(cfg, command="pytest")
        yield result, mlflow.MlflowClient(uri)


def _read(client, run_id, path, dst):
    return client.download_artifacts(run_id, path, str(dst))


def test_every_latent_artifact_exists_parses_and_metrics_are_logged(ae_run, tmp_path):
    result, client = ae_run
    run_id = result.run_id
    names = {a.path.split("/")[-1] for a in client.list_artifacts(run_id, "latent")}
    assert set(FIGURES) <= names

    npz = np.load(_read(client, run_id, "latent/histograms.npz", tmp_path))
    assert npz["edges"].shape == (101,) and npz["counts"].shape == (256, 100) and npz["counts"].dtype == np.int64
    # [-12, 12] unless this barely trained encoder's values leave it: then widened symmetrically to cover them
    assert npz["edges"][0] <= -12 and npz["edges"][-1] == -npz["edges"][0]
    assert npz["counts"].sum(axis=1).min() == npz["counts"].sum(axis=1).max()  # every vector counted in every row
    comp = pd.read_csv(_read(client, run_id, "latent/components.csv", tmp_path))
    assert list(comp.columns) == ["component", "mean", "std", "mu", "mode", "half_width", "gauss_mu", "gauss_sigma",
                                  "fit_r2", "dominant", "skew", "kurtosis"]
    assert len(comp) == 256 and (comp["half_width"] > 0).all()
    hits = pd.read_csv(_read(client, run_id, "latent/hit_rates.csv", tmp_path))
    assert list(hits.columns) == ["b", "k", "n_vectors", "hits", "fraction"] and len(hits) == 5 * 4
    assert (hits["n_vectors"] == 5000).all()
    np.testing.assert_allclose(hits["fraction"], hits["hits"] / hits["n_vectors"])
    radius = pd.read_csv(_read(client, run_id, "latent/radius.csv", tmp_path))
    assert list(radius.columns) == ["source", "mean", "std", "analytic_mean", "analytic_std"]
    assert radius["source"].tolist()[0] == "data" and len(radius) == 6
    pca_hits = pd.read_csv(_read(client, run_id, "latent/hit_rates_pca.csv", tmp_path))
    assert list(pca_hits.columns) == list(hits.columns) and len(pca_hits) == len(hits)
    heldout = pd.read_csv(_read(client, run_id, "latent/heldout.csv", tmp_path))
    assert heldout["split"].tolist() == ["test"] * 4 and heldout["k"].tolist() == [1.5, 2.0, 3.0, 12.0]
    assert ((heldout["fraction"] >= 0) & (heldout["fraction"] <= 1)).all()
    mahalanobis = pd.read_csv(_read(client, run_id, "latent/mahalanobis.csv", tmp_path))
    assert list(mahalanobis.columns) == ["quantile", "observed", "chi2", "dof"]
    paths = pd.read_csv(_read(client, run_id, "latent/interpolations.csv", tmp_path))
    assert set(paths["path"]) == {"linear", "spherical"} and paths["in_region_share"].between(0, 1).all()
    summary = json.load(open(_read(client, run_id, "latent/summary.json", tmp_path)))
    for key in ("n_mu_ge_0.25", "n_mu_ge_1", "n_hw_ge_1", "n_hw_ge_1.5", "n_hw_ge_3", "share_mu_lt_0.25",
                "z_min", "z_max", "n_pca_90"):
        assert key in summary
    z = np.load(_read(client, run_id, "latent/z_sample.npy", tmp_path))
    index = np.load(_read(client, run_id, "latent/z_sample_index.npy", tmp_path))
    assert z.dtype == np.float32 and z.shape == (len(index), 256) and len(index) == summary["n_vectors"]

    metrics = client.get_run(run_id).data.metrics
    for key in ("latent/n_mu_ge_0.25", "latent/n_hw_ge_1.5", "latent/hit_b1.5_k2", "latent/hit_b12_k12",
                "latent/radius_mean", "latent/radius_std", "latent/pca_90", "latent/mahalanobis_ks",
                "latent/test_region_k2"):
        assert key in metrics, key
    assert [m.step for m in client.get_metric_history(run_id, "latent/pca_90")] == [0]  # the epoch


def test_analyze_adds_to_the_same_run_and_bad_input_leaves_it_alone(ae_run, capsys):
    result, client = ae_run
    run_id = result.run_id

    def state():
        run = client.get_run(run_id)
        return run.data.metrics, run.data.params, sorted(a.path for a in client.list_artifacts(run_id, "latent"))

    before = state()
    for argv, fragment in ((["analyze", "0123456789abcdef"], "does not exist"),
                           (["analyze", run_id, "analysis.b=[]"], "analysis.b"),
                           (["analyze", run_id, "analysis.b=[-1,2]"], "analysis.b")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and "\n" not in err
    assert state() == before

    analyze(run_id, ["analysis.b=[1,2]", "analysis.n_random=1000"])
    hits = pd.read_csv(io.StringIO(open(client.download_artifacts(run_id, "latent/hit_rates.csv")).read()))
    assert sorted(set(hits["b"])) == [1, 2] and (hits["n_vectors"] == 1000).all()
    assert client.get_run(run_id).info.run_id == run_id
