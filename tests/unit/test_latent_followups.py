"""Known-answer tests of the follow-up latent analyses (issue 21): paths, the ellipsoid test, held-out shares, the
hit grid in principal axes, skew and kurtosis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from analysis import latent as ls
from analysis.encode import decode_vectors
from analysis.latent import paths
from analysis.latent.ellipsoid import ks_chi2, mahalanobis_squared, mahalanobis_table, principal_coordinates
from analysis.latent.fits import shape_moments
from analysis.latent.followups import analyze_follow_ups
from analysis.latent.heldout import heldout_table, region_fractions
from analysis.latent.pca import principal_axes
from analysis.settings import LatentSettings
from latentdream.errors import InputError


def _rotated_gaussian(n: int, sigmas, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Independent Gaussians with standard deviations ``sigmas``, rotated by a random orthogonal matrix."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(sigmas))) * np.asarray(sigmas)
    q, _ = np.linalg.qr(rng.standard_normal((len(sigmas), len(sigmas))))
    return (x @ q.T + 0.5).astype(np.float32), q


# ---------------------------------------------------------------------------------------------- the ellipsoid
def test_a_chi2_sample_has_a_ks_statistic_near_zero_and_a_wrong_dof_does_not():
    sample = np.random.default_rng(1).chisquare(32, 40_000)
    assert ks_chi2(sample, 32) < 0.01
    assert ks_chi2(sample, 24) > 0.3


def test_gaussian_vectors_follow_chi2_n_and_the_distance_is_the_full_covariance_one():
    z, _ = _rotated_gaussian(30_000, np.linspace(0.2, 2.0, 12))
    mean, cov = ls.latent_moments(z)
    variances, axes = principal_axes(cov)
    d2, dof = mahalanobis_squared(z, mean, variances, axes)
    x = z[:50].astype(np.float64) - mean
    np.testing.assert_allclose(d2[:50], np.einsum("ij,jk,ik->i", x, np.linalg.inv(cov), x), rtol=1e-9)
    assert dof == 12
    assert ks_chi2(d2, dof) < 0.015
    table = mahalanobis_table(d2, dof)
    assert list(table.columns) == ["quantile", "observed", "chi2", "dof"] and len(table) == 199
    np.testing.assert_allclose(table["observed"], table["chi2"], rtol=0.05)


def test_a_constant_component_is_left_out_of_the_degrees_of_freedom():
    z, _ = _rotated_gaussian(5_000, np.ones(6))
    z = np.column_stack([z, np.full(len(z), 3.0, np.float32)])
    mean, cov = ls.latent_moments(z)
    d2, dof = mahalanobis_squared(z, mean, *principal_axes(cov))
    x = z[:20].astype(np.float64) - mean
    assert dof == 6
    np.testing.assert_allclose(d2[:20], np.einsum("ij,jk,ik->i", x, np.linalg.pinv(cov), x), rtol=1e-6)


def test_a_heavy_tailed_cloud_is_far_from_the_ellipsoid():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((20_000, 16)) * rng.choice([0.3, 3.0], size=(20_000, 1))  # a scale mixture
    mean, cov = ls.latent_moments(z)
    d2, dof = mahalanobis_squared(z, mean, *principal_axes(cov))
    assert ks_chi2(d2, dof) > 0.2


def test_skew_and_excess_kurtosis_match_scipy_and_the_known_values():
    rng = np.random.default_rng(3)
    z = np.column_stack([rng.standard_normal(200_000), rng.uniform(-1, 1, 200_000), rng.exponential(1, 200_000),
                         np.full(200_000, 2.0)]).astype(np.float32)
    skew, kurt = shape_moments(z, z.mean(axis=0, dtype=np.float64))
    np.testing.assert_allclose(skew[:3], stats.skew(z[:, :3].astype(np.float64)), atol=1e-4)
    np.testing.assert_allclose(kurt[:3], stats.kurtosis(z[:, :3].astype(np.float64)), atol=1e-4)
    np.testing.assert_allclose(skew[:3], [0.0, 0.0, 2.0], atol=0.1)
    np.testing.assert_allclose(kurt[:3], [0.0, -1.2, 6.0], atol=0.35)
    assert np.isnan(skew[3]) and np.isnan(kurt[3])
    edges, counts = ls.component_histograms(z[:, :3])
    table = ls.component_stats(z[:, :3], edges, counts)
    assert list(table.columns[-2:]) == ["skew", "kurtosis"]
    np.testing.assert_allclose(table["kurtosis"], kurt[:3])


# ---------------------------------------------------------------------------------------------- paths
def test_the_widest_components_come_first_and_ties_go_to_the_larger_mu():
    mu = np.array([0.0, 0.5, -2.0, 0.1, 0.0])
    hw = np.array([1.0, 3.0, 3.0, 0.5, 2.0])
    assert paths.widest_components(mu, hw, n=4).tolist() == [2, 1, 4, 0]


def test_a_traversal_sweeps_one_component_over_mu_pm_3_hw_from_the_mean():
    base = np.array([0.1, 0.2, 0.3])
    vectors, values = paths.traversal_vectors(base, mu=[1.0, 0.0, -1.0], half_width=[0.5, 2.0, 1.0],
                                              components=[1, 0])
    assert vectors.shape == (2, 9, 3)
    np.testing.assert_allclose(values[0], np.linspace(-6.0, 6.0, 9))
    np.testing.assert_allclose(values[1, [0, 4, 8]], [-0.5, 1.0, 2.5])
    np.testing.assert_allclose(vectors[0][:, [0, 2]], np.tile([0.1, 0.3], (9, 1)), rtol=1e-6)
    np.testing.assert_allclose(vectors[1][:, 0], values[1], rtol=1e-6)


def test_a_traversal_of_a_component_the_decoder_ignores_decodes_to_identical_images():
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 4, 4)))
    with torch.no_grad():
        decoder[0].weight[:, 2] = 0.0  # component 2 reaches no pixel
    rng = np.random.default_rng(0)
    mu, hw = rng.normal(0, 1, 6), rng.uniform(0.5, 2.0, 6)
    vectors, _ = paths.traversal_vectors(rng.normal(0, 1, 6), mu, hw, components=[2, 4])
    images = decode_vectors(decoder, vectors.reshape(-1, 6)).reshape(2, 9, 4, 4)
    assert np.all(images[0] == images[0, :1])  # identical, to the bit
    assert np.abs(images[1] - images[1, :1]).max() > 1e-3  # a component it reads changes the image


def test_linear_and_spherical_paths_start_and_end_at_the_images():
    a, b = np.array([[3.0, 0.0, 0.0]]), np.array([[0.0, 3.0, 0.0]])
    out = paths.interpolation_vectors(a, b, n_steps=5)
    for path in out.values():
        np.testing.assert_allclose(path[0, 0], a[0]) and np.testing.assert_allclose(path[0, -1], b[0])
    np.testing.assert_allclose(np.linalg.norm(out["spherical"][0], axis=1), 3.0, rtol=1e-6)  # stays on the sphere
    np.testing.assert_allclose(out["spherical"][0, 2], [3 / np.sqrt(2), 3 / np.sqrt(2), 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["linear"][0, 2], [1.5, 1.5, 0.0])
    np.testing.assert_allclose(paths.slerp(a[0], 2 * a[0], [0.0, 0.5, 1.0]), paths.lerp(a[0], 2 * a[0], [0, 0.5, 1]))


def test_in_region_share_counts_components_not_vectors():
    mu, hw = np.zeros(4), np.ones(4)
    x = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 1.9, 2.1, -5.0], [3.0, 3.0, 3.0, 3.0]])
    np.testing.assert_allclose(paths.in_region_share(x, mu, hw, k=2.0), [1.0, 0.5, 0.0])
    assert ls.region_fraction(x, mu, hw, 2.0) == pytest.approx(1 / 3)


def test_the_interpolation_table_has_a_row_per_pair_path_step_and_k():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, (4, 5))
    vectors = paths.interpolation_vectors(z[:2], z[2:], n_steps=9)
    table = paths.interpolation_table(vectors, np.array([[0, 2], [1, 3]]), np.zeros(5), np.ones(5), [1.0, 2.0])
    assert list(table.columns) == list(paths.INTERPOLATION_COLUMNS) and len(table) == 2 * 2 * 9 * 2
    first = table[(table["pair"] == 0) & (table["path"] == "linear") & (table["k"] == 2.0)]
    np.testing.assert_allclose(first["in_region_share"],
                               paths.in_region_share(vectors["linear"][0], np.zeros(5), np.ones(5), 2.0))
    assert first["t"].tolist() == pytest.approx(np.linspace(0, 1, 9).tolist())
    with pytest.raises(InputError):
        paths.interpolation_vectors(z[:2], z[:3])


# ---------------------------------------------------------------------------------------------- held-out data
def test_region_fractions_equal_region_fraction_for_every_k():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 1, (3_000, 8)).astype(np.float32)
    mu, hw = rng.normal(0, 0.2, 8), rng.uniform(0.5, 1.5, 8)
    hw[3] = 0.0
    z[:10, 3] = np.float32(mu[3])  # the degenerate component: inside only where equal
    ks = [0.0, 1.0, 2.0, 3.0]
    assert region_fractions(z, mu, hw, ks).tolist() == [ls.region_fraction(z, mu, hw, k) for k in ks]


def test_held_out_vectors_like_the_training_ones_share_their_fraction_and_radius():
    rng = np.random.default_rng(5)
    train, held = rng.normal(0, 1, (20_000, 6)), rng.normal(0, 1, (20_000, 6))
    table = heldout_table(held, "val", train, np.zeros(6), np.full(6, 2.3548), [1.0, 2.0])
    assert table["split"].tolist() == ["val", "val"]
    np.testing.assert_allclose(table["fraction"], table["train_fraction"], atol=0.015)
    all_six_inside = (2 * stats.norm.cdf(2.3548 * np.array([1.0, 2.0])) - 1) ** 6
    np.testing.assert_allclose(table["fraction"], all_six_inside, atol=0.01)
    np.testing.assert_allclose(table["radius_mean"], table["train_radius_mean"], rtol=0.01)
    far = heldout_table(held + 10.0, "test", train, np.zeros(6), np.full(6, 2.3548), [2.0])
    assert far["fraction"].iloc[0] == 0.0 and far["inside"].iloc[0] == 0


# ---------------------------------------------------------------------------------------------- principal axes
def test_the_hit_grid_in_principal_axes_measures_the_rotated_widths():
    sigmas = np.array([1.5, 1.0, 0.6, 0.3])
    z, _ = _rotated_gaussian(40_000, sigmas)
    s = LatentSettings(b=[1.0, 2.0], k=[1.0, 2.0], n_random=5_000, seed=7)
    report = ls.analyze_latents(z, s, with_uniform_counts=False)
    out = analyze_follow_ups(z, report, s, z_heldout=z[:100], heldout_split="test")
    axes = out.pca_components
    np.testing.assert_allclose(axes["half_width"], ls.FWHM_PER_SIGMA * sigmas, atol=0.24)  # within a bin
    np.testing.assert_allclose(axes["mu"], 0.0, atol=0.02)  # centred
    assert list(out.hits_pca.columns) == list(ls.HIT_COLUMNS) and len(out.hits_pca) == 4
    expected = ls.hit_counts(axes["mu"], axes["half_width"], s.b, s.k, 5_000,
                             np.random.default_rng(np.random.SeedSequence(7).spawn(3)[0]))  # the data grid's seed
    assert out.hits_pca.equals(expected)
    assert out.dof == 4 and out.mahalanobis_ks < 0.02
    y, d2, _ = principal_coordinates(z, report.mean, *principal_axes(report.cov))
    np.testing.assert_allclose(y.std(axis=0), sigmas, rtol=0.02)
    np.testing.assert_allclose(d2, out.mahalanobis_d2)
    assert out.heldout["n_vectors"].iloc[0] == 100
