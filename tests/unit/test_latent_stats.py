"""Known-answer tests of analysis.latent (fast: small arrays, fixed seeds)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import latent as ls
from analysis.latent.sampling import _scale_uniform
from analysis.settings import LatentSettings
from latentdream.errors import InputError

BIN = 24 / 100  # default bin width


# --------------------------------------------------------------------------------------------------------------
# histograms
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_histograms_equal_np_histogram_per_component(dtype):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 6, size=(3000, 7)).astype(dtype)  # a good share falls outside [-12, 12]
    edges32 = np.histogram_bin_edges(np.empty(0, dtype), bins=100, range=(-12, 12))
    z[:101, 0] = edges32  # values exactly on every edge, including both outer ones
    z[:5, 1] = [-12, 12, -12.000001, 12.000001, 0]
    edges, counts = ls.component_histograms(z, chunk_size=257)  # odd chunks: row blocks must add up
    assert counts.shape == (7, 100) and counts.dtype == np.int64
    np.testing.assert_allclose(edges, np.linspace(-12, 12, 101))
    for i in range(7):
        expected, _ = np.histogram(z[:, i], bins=100, range=(-12, 12))
        np.testing.assert_array_equal(counts[i], expected)
    assert counts.sum() < z.size  # out-of-range values were dropped, not clipped into the end bins


def test_histograms_other_binning():
    z = np.array([[0.0, 1.0], [0.5, 1.0], [0.99, 3.0], [1.0, -1.0]])
    edges, counts = ls.component_histograms(z, n_bins=2, value_range=(0, 1))
    np.testing.assert_array_equal(edges, [0, 0.5, 1])
    np.testing.assert_array_equal(counts, [[1, 3], [0, 2]])  # 1.0 is in the closed last bin


# --------------------------------------------------------------------------------------------------------------
# peak centre and FWHM on hand-made histograms
# --------------------------------------------------------------------------------------------------------------
def test_half_width_is_full_width_with_linear_interpolation():
    edges = np.arange(8.0)  # unit bins, centres 0.5 … 6.5
    counts = np.array([[0, 1, 3, 8, 3, 1, 0], [0, 1, 2, 3, 2, 1, 0]])
    # row 0: half = 4; crossings 0.8 bins either side of the peak centre → FWHM 1.6
    # row 1 (a triangle from 0.5 to 6.5, peak 3 at 3.5): half = 1.5, crossings at 2.0 and 5.0 → 3.0
    np.testing.assert_allclose(ls.half_widths(edges, counts), [1.6, 3.0])


def test_half_width_open_side_uses_range_edge_and_empty_is_nan():
    edges = np.arange(5.0)
    counts = np.array([[4, 4, 1, 0], [0, 0, 0, 0]])
    hw = ls.half_widths(edges, counts)
    # the peak is the first bin, so the left side never falls to half: from the range edge 0 to the right
    # crossing between centres 1.5 (count 4) and 2.5 (count 1): 1.5 + (4 − 2)/(4 − 1)
    assert hw[0] == pytest.approx(1.5 + 2 / 3)
    assert math.isnan(hw[1])


def test_peak_centre_parabola_refinement():
    edges = np.arange(6.0)
    counts = np.array([[0, 2, 4, 3, 0], [0, 3, 4, 3, 0], [9, 1, 0, 0, 0]])
    # vertex of the parabola through (1.5, 2), (2.5, 4), (3.5, 3): 2.5 + 0.5·(2 − 3)/(2 − 8 + 3) = 2.5 + 1/6
    np.testing.assert_allclose(ls.peak_centres(edges, counts), [2.5 + 1 / 6, 2.5, 0.5])


# --------------------------------------------------------------------------------------------------------------
# per-component statistics on synthetic Gaussians
# --------------------------------------------------------------------------------------------------------------
# (mu, sigma, dominant by |mu| >= 0.25 or FWHM = 2.3548·sigma >= 1.5)
TRUE = [
    (0.0, 1.0, True),  # wide: FWHM 2.35
    (2.25, 0.95, True),  # off-centre like the post's component 118
    (-1.5, 0.85, True),
    (0.5, 0.4, True),  # by mu only
    (-0.4, 0.45, True),
    (0.0, 0.4, False),  # FWHM 0.94
    (0.1, 0.5, False),  # FWHM 1.18
    (-0.1, 0.3, False),
    (0.0, 2.0, True),
]


@pytest.fixture(scope="module")
def gaussian_z():
    rng = np.random.default_rng(1)
    mu = np.array([t[0] for t in TRUE])
    sigma = np.array([t[1] for t in TRUE])
    return (rng.standard_normal((60_000, len(TRUE))) * sigma + mu).astype(np.float32), mu, sigma


@pytest.fixture(scope="module")
def gaussian_stats(gaussian_z):
    z = gaussian_z[0]
    edges, counts = ls.component_histograms(z)
    return ls.component_stats(z, edges, counts)


def test_component_columns(gaussian_stats):
    assert tuple(gaussian_stats.columns) == ls.COMPONENT_COLUMNS
    np.testing.assert_array_equal(gaussian_stats["component"], np.arange(len(TRUE)))


def test_mu_and_half_width_within_one_bin(gaussian_z, gaussian_stats):
    _, mu, sigma = gaussian_z
    np.testing.assert_allclose(gaussian_stats["mu"], mu, atol=BIN)
    np.testing.assert_allclose(gaussian_stats["half_width"], ls.FWHM_PER_SIGMA * sigma, atol=BIN)


def test_mu_is_the_central_average_to_0_01_rms_where_the_mode_is_not():
    """The post's setting: 170,000 vectors, 100 bins over [-12, 12]; 64 components with known centres and widths up
    to σ = 1.75. ``mu`` (the Gaussian fit's centre) is within 0.01 rms; the histogram mode wanders by a bin."""
    rng = np.random.default_rng(7)
    n_comp = 64
    centre = rng.uniform(-3.0, 3.0, n_comp)
    sigma = np.concatenate([np.full(8, 1.75), rng.uniform(0.2, 1.75, n_comp - 8)])
    z = (rng.standard_normal((170_000, n_comp), dtype=np.float32) * sigma + centre).astype(np.float32)
    edges, counts = ls.component_histograms(z, n_bins=100, value_range=(-12, 12))
    stats = ls.component_stats(z, edges, counts)
    rms = {col: float(np.sqrt(np.mean((stats[col].to_numpy() - centre) ** 2))) for col in ("mu", "mode")}
    assert rms["mu"] <= 0.01, rms
    assert rms["mode"] > 0.03, rms  # the old definition of mu fails this test
    np.testing.assert_array_equal(stats["mu"], stats["gauss_mu"])


def test_fwhm_of_resolved_gaussians_is_2_3548_sigma(gaussian_z, gaussian_stats):
    _, _, sigma = gaussian_z
    wide = sigma >= 0.85  # several bins across the peak
    ratio = gaussian_stats["half_width"].to_numpy()[wide] / sigma[wide]
    np.testing.assert_allclose(ratio, 2.3548, rtol=0.02)
    # a wrong definition (half of the FWHM, or sigma itself) is far off
    assert np.all(np.abs(ratio - 1.1774) > 0.5)


def test_gaussian_fit_recovers_parameters(gaussian_z, gaussian_stats):
    _, mu, sigma = gaussian_z
    np.testing.assert_allclose(gaussian_stats["gauss_sigma"], sigma, rtol=0.03)
    np.testing.assert_allclose(gaussian_stats["gauss_mu"], mu, atol=0.02)
    assert (gaussian_stats["fit_r2"] > 0.99).all()
    np.testing.assert_allclose(gaussian_stats["std"], sigma, rtol=0.02)


def test_dominant_flags_exact(gaussian_stats):
    np.testing.assert_array_equal(gaussian_stats["dominant"], [t[2] for t in TRUE])


def test_dominant_thresholds_are_parameters(gaussian_z):
    z = gaussian_z[0]
    edges, counts = ls.component_histograms(z)
    stats = ls.component_stats(z, edges, counts, mu_threshold=1.0, hw_threshold=4.0)
    np.testing.assert_array_equal(stats["dominant"], [False, True, True, False, False, False, False, False, True])


def test_fit_on_a_single_bin_falls_back_to_std():
    edges = np.linspace(-12, 12, 101)
    counts = np.zeros(100)
    counts[50] = 1000
    mu, sigma, r2 = ls.fit_gaussian(edges, counts, mean=0.1, std=0.02)
    assert sigma == pytest.approx(0.02)
    assert 0.0 < mu < 0.24 and r2 > 0.99
    assert all(math.isnan(v) for v in ls.fit_gaussian(edges, np.zeros(100), 0.0, 1.0))


def test_fit_r2_is_low_for_a_bimodal_histogram():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(-4, 0.5, 5000), rng.normal(4, 0.5, 5000)])[:, None]
    edges, counts = ls.component_histograms(z)
    _, _, r2 = ls.fit_gaussian(edges, counts[0], z.mean(), z.std())
    assert r2 < 0.6


def test_summary_counts_known_values():
    comps = pd.DataFrame(
        {
            "mu": [0.0, 0.25, -0.3, 1.0, -2.0, 0.1],
            "half_width": [0.5, 1.0, 1.5, 3.0, 0.2, 0.99],
            "dominant": [False, True, True, True, True, False],
        }
    )
    z = np.array([[-3.5, 7.25], [0.0, 1.0]])
    summary = ls.summary_counts(z, comps)
    assert summary == {
        "n_mu_ge_0.25": 4,
        "n_mu_ge_1": 2,
        "n_hw_ge_1": 3,
        "n_hw_ge_1.5": 2,
        "n_hw_ge_3": 1,
        "share_mu_lt_0.25": pytest.approx(2 / 6),
        "z_min": -3.5,
        "z_max": 7.25,
        "n_dominant": 4,
    }
    json.dumps(summary)  # plain ints and floats only
    assert all(type(v) in (int, float) for v in summary.values())


# --------------------------------------------------------------------------------------------------------------
# hit grid
# --------------------------------------------------------------------------------------------------------------
def _loop_hits(mu, hw, b_values, k_values, n, seed):
    """Plain Python count: rebuild the vectors from the seed and test every component in float32."""
    rng = np.random.default_rng(seed)
    mu32, hw32 = np.float32(mu), np.float32(hw)
    out = {}
    for b in b_values:
        x = ls.sample_uniform(n, len(mu), b, rng)
        for k in k_values:
            hits = 0
            for v in range(n):
                if all(abs(x[v, i] - mu32[i]) <= np.float32(k) * hw32[i] for i in range(len(mu))):
                    hits += 1
            out[(b, k)] = hits
    return out


MU5 = np.array([0.0, 0.3, -0.2, 0.1, 0.5])
HW5 = np.array([0.8, 1.0, 0.6, 1.2, 0.9])


@pytest.mark.parametrize("chunk_size", [7, 64, 10_000])
def test_hit_counts_equal_python_loop(chunk_size):
    b_values, k_values, n = [0.5, 1.0, 2.0], [0.5, 1.0, 2.0], 300
    table = ls.hit_counts(MU5, HW5, b_values, k_values, n, seed=3, chunk_size=chunk_size)
    expected = _loop_hits(MU5, HW5, b_values, k_values, n, seed=3)
    assert list(table.columns) == list(ls.HIT_COLUMNS) and len(table) == 9
    got = {(r.b, r.k): r.hits for r in table.itertuples()}
    assert got == expected
    assert any(0 < h < n for h in got.values())  # the grid has partial hits, so the comparison is not trivial
    np.testing.assert_allclose(table["fraction"], table["hits"] / n)
    pd.testing.assert_frame_equal(table, ls.hit_counts_reference(MU5, HW5, b_values, k_values, n, seed=3))


class _Replay:
    """Stand-in for np.random.Generator.random that hands out given float32 numbers in row-major order."""

    def __init__(self, values: np.ndarray):
        self.flat, self.pos = np.asarray(values, dtype=np.float32).ravel(), 0

    def random(self, size=None, dtype=np.float64, out=None):
        target = np.empty(size, dtype=np.float32) if out is None else out
        target[...] = self.flat[self.pos : self.pos + target.size].reshape(target.shape)
        self.pos += target.size
        return target


def _boundary_uniforms(mu, hw, b, k_values, steps=12):
    """u values whose vectors sit within a few float32 ulps of the box surface mu_i ± k·hw_i (other components at
    their centre): exactly where the fused score and the float32 definition may round differently."""
    centre = (np.asarray(mu, dtype=np.float32) + np.float32(b)) / np.float32(2 * b)
    rows = []
    for k in k_values:
        for i in range(len(mu)):
            for sign in (-1, 1):
                u0 = np.float32((mu[i] + sign * k * hw[i] + b) / (2 * b))
                for j in range(-steps, steps + 1):
                    u = centre.copy()
                    u[i] = u0
                    for _ in range(abs(j)):
                        u[i] = np.nextafter(u[i], np.float32(2 if j > 0 else -2))
                    rows.append(u)
    return np.array(rows, dtype=np.float32)


def test_hit_counts_exact_at_the_box_surface():
    mu, hw, b, k_values = np.array([0.1, -0.3, 0.05]), np.array([0.1, 0.7, 0.33]), 1.3, [1.5, 3.0, 0.7]
    u = _boundary_uniforms(mu, hw, b, k_values)
    x = _scale_uniform(u, b)
    exact = np.stack([np.all(np.abs(x - np.float32(mu)) <= np.float32(k) * np.float32(hw), axis=1)
                      for k in k_values])
    fast = ls.hit_counts(mu, hw, [b], k_values, len(u), seed=_Replay(u), chunk_size=50)
    np.testing.assert_array_equal(fast["hits"], exact.sum(axis=1))
    ref = ls.hit_counts_reference(mu, hw, [b], k_values, len(u), seed=_Replay(u))
    np.testing.assert_array_equal(ref["hits"], exact.sum(axis=1))
    # the rows straddle the surface: roughly half of each k's rows are in
    assert np.all((fast["hits"] > 0) & (fast["hits"] < len(u)))


def test_hit_counts_degenerate_width_does_not_divide_by_zero():
    mu, hw = np.array([0.0, 0.2]), np.array([0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = ls.hit_counts(mu, hw, [1.0], [1.0, 100.0], 500, seed=0)
    assert (table["hits"] == 0).all()  # a float never lands exactly on mu


def test_k_scores_and_region_fraction_known_answers():
    mu, hw = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 0.0])
    x = np.array([[0.5, 2.0, 2.0], [-2.0, 1.0, 2.0], [0.0, -4.0, 2.0], [0.0, 1.0, 2.5]])
    np.testing.assert_allclose(ls.k_scores(x, mu, hw), [0.5, 2.0, 2.5, np.inf])
    assert ls.region_fraction(x, mu, hw, 2.0) == pytest.approx(0.5)
    assert ls.region_fraction(x, mu, hw, 3.0) == pytest.approx(0.75)


def test_same_seed_same_vectors_different_seed_different():
    a = ls.hit_counts(MU5, HW5, [1.0], [1.0], 2000, seed=11)
    b = ls.hit_counts(MU5, HW5, [1.0], [1.0], 2000, seed=11)
    c = ls.hit_counts(MU5, HW5, [1.0], [1.0], 2000, seed=12)
    assert a.equals(b) and not a.equals(c)


def test_hit_counts_rejects_bad_input():
    with pytest.raises(InputError, match="half_width"):
        ls.hit_counts(MU5, -HW5, [1.0], [1.0], 10, seed=0)
    with pytest.raises(InputError, match="b_values"):
        ls.hit_counts(MU5, HW5, [0.0], [1.0], 10, seed=0)
    with pytest.raises(InputError, match="n_random"):
        ls.hit_counts(MU5, HW5, [1.0], [1.0], 0, seed=0)


# --------------------------------------------------------------------------------------------------------------
# radii
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b", [0.5, 1.5, 12.0])
def test_analytic_radius_moments_match_monte_carlo(b):
    r = ls.uniform_radii(40_000, 256, b, np.random.default_rng(int(b * 10)))
    mean, std = ls.uniform_radius_moments(b, 256)
    assert r.mean() == pytest.approx(mean, rel=0.01)
    assert r.std() == pytest.approx(std, rel=0.01)
    assert std == pytest.approx(b / math.sqrt(15))  # no sqrt(N) in the spread


def test_radius_spread_does_not_grow_with_dimension():
    stds = [ls.uniform_radii(20_000, dim, 1.0, np.random.default_rng(dim)).std() for dim in (64, 1024)]
    assert stds[1] == pytest.approx(stds[0], rel=0.05)
    assert stds[0] == pytest.approx(1 / math.sqrt(15), rel=0.03)


def test_radius_table_rows():
    z = np.full((10, 4), 0.5, dtype=np.float32)  # every radius is exactly 1
    table = ls.radius_table(z, [1.0, 1.5], 1000, seed=0)
    assert list(table.columns) == list(ls.RADIUS_COLUMNS)
    assert list(table["source"]) == ["data", "uniform_b1", "uniform_b1.5"]
    assert table.loc[0, "mean"] == pytest.approx(1.0) and table.loc[0, "std"] == pytest.approx(0.0, abs=1e-7)
    assert table.loc[0, ["analytic_mean", "analytic_std"]].isna().all()
    assert table.loc[2, "analytic_mean"] == pytest.approx(1.5 * math.sqrt(4 / 3) * (1 - 1 / 40))
    np.testing.assert_allclose(ls.radii(np.array([[3.0, 4.0], [0.0, 0.0]])), [5.0, 0.0])


# --------------------------------------------------------------------------------------------------------------
# correlation and PCA
# --------------------------------------------------------------------------------------------------------------
def test_pca_spectrum_of_known_rank_data():
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.standard_normal((20, 3)))  # 3 orthonormal directions in N = 20
    scores = rng.standard_normal((20_000, 3)) * np.sqrt([10.0, 5.0, 1.0])
    z = (scores @ basis.T + rng.normal(0, 1, 20)).astype(np.float64)
    ratios = ls.pca_spectrum(z)
    assert ratios.shape == (20,) and np.all(np.diff(ratios) <= 1e-15)
    np.testing.assert_allclose(ratios[:3], [0.625, 0.3125, 0.0625], atol=0.02)
    assert ratios[3:].sum() < 1e-10  # rank 3
    assert ls.n_components_for(ratios, 0.9) == 2
    assert ls.n_components_for(ratios, 0.95) == 3
    assert ls.n_components_for(ratios, 0.5) == 1


def test_n_components_for_exact_boundary():
    assert ls.n_components_for(np.array([0.6, 0.3, 0.1]), 0.9) == 2
    assert ls.n_components_for(np.array([0.25] * 4), 1.0) == 4


def test_dominant_correlation_and_top_two():
    rng = np.random.default_rng(6)
    a = rng.standard_normal(5000)
    z = np.stack([a, rng.standard_normal(5000), -2 * a + 1, rng.standard_normal(5000)], axis=1)
    corr = ls.dominant_correlation(z, [0, 2, 3])
    assert corr.shape == (3, 3)
    assert corr[0, 1] == pytest.approx(-1.0) and abs(corr[0, 2]) < 0.05
    mu, hw = np.array([0.1, 2.0, -0.5, 0.0]), np.array([3.0, 0.5, 1.5, 4.0])
    assert ls.top_two_dominant(mu, hw) == (3, 0)  # scores 3.1, 2.5, 2.0, 4.0
    assert ls.top_two_dominant(mu, hw, dominant=[False, True, True, False]) == (1, 2)


# --------------------------------------------------------------------------------------------------------------
# samplers, the report, purity
# --------------------------------------------------------------------------------------------------------------
def test_samplers_shapes_ranges_and_moments():
    rng = np.random.default_rng(7)
    x = ls.sample_uniform(5000, 8, 1.5, rng)
    assert x.shape == (5000, 8) and x.dtype == np.float32 and x.min() >= -1.5 and x.max() < 1.5
    g = ls.sample_component_gaussian(20_000, np.array([1.0, -2.0]), np.array([0.5, 2.0]), rng)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.mean(axis=0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(g.std(axis=0), [0.5, 2.0], rtol=0.03)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    m = ls.sample_multivariate(20_000, np.array([0.0, 3.0]), cov, rng)
    np.testing.assert_allclose(np.cov(m, rowvar=False), cov, atol=0.05)
    mean, cov_est = ls.latent_moments(m.astype(np.float64), chunk_size=999)
    np.testing.assert_allclose(cov_est, np.cov(m, rowvar=False, bias=True), rtol=1e-6)


def test_analyze_latents_bundles_everything():
    rng = np.random.default_rng(8)
    z = (rng.standard_normal((3000, 16)) * np.linspace(0.2, 1.2, 16)).astype(np.float32)
    z[:, 3] += 1.0
    settings = LatentSettings(b=[1.0, 2.0], k=[2.0, 3.0], n_random=500)
    report = ls.analyze_latents(z, settings)
    assert report.counts.shape == (16, 100) and len(report.edges) == 101
    assert len(report.hits) == 4 and list(report.radii["source"]) == ["data", "uniform_b1", "uniform_b2"]
    assert 3 in report.dominant_idx and report.correlation.shape == (len(report.dominant_idx),) * 2
    assert report.summary["n_mu_ge_1"] == 1 and report.pca_ratios.shape == (16,)
    assert 1 <= report.n_pca_90 <= 16 and report.top_two[0] != report.top_two[1]
    again = ls.analyze_latents(z, settings)
    assert report.hits.equals(again.hits)  # seeded


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match="z"):
        ls.component_histograms(np.zeros(5))
    with pytest.raises(InputError, match="value_range"):
        ls.component_histograms(np.zeros((3, 2)), value_range=(1, -1))
    with pytest.raises(InputError, match="same"):
        ls.k_scores(np.zeros((2, 2)), [0.0, 0.0], [1.0])
