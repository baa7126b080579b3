"""Gaussian fits of the per-component histograms, the per-component table (centre mu, half-width, dominant flag)
and the post's counting statements."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import ndtr

from analysis.latent.checks import _check_z, _row_chunks
from analysis.latent.histograms import half_widths, peak_centres
from latentdream.errors import InputError

COMPONENT_COLUMNS = ("component", "mean", "std", "mu", "mode", "half_width", "gauss_mu", "gauss_sigma", "fit_r2",
                     "dominant", "skew", "kurtosis")


def binned_gaussian(edges: np.ndarray, amplitude: float, mu: float, sigma: float) -> np.ndarray:
    """Expected counts per bin of ``amplitude`` values drawn from N(mu, sigma²):
    A·[Φ((e_{j+1} − μ)/σ) − Φ((e_j − μ)/σ)], shape (B,). Integrating over each bin (rather than sampling the
    density at the centre) keeps σ unbiased even for distributions only a bin or two wide."""
    cdf = ndtr((np.asarray(edges, dtype=np.float64) - mu) / (abs(sigma) + 1e-300))
    return amplitude * np.diff(cdf)


def _r2(y: np.ndarray, y_fit: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - y_fit) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


def fit_gaussian(edges: np.ndarray, counts: np.ndarray, mean: float, std: float) -> tuple[float, float, float]:
    """Least-squares fit of :func:`binned_gaussian` to one histogram.

    Starts from the moments (in-range count, ``mean``, ``std``); when the fit fails or returns nonsense the
    moments themselves are the answer, and a fit narrower than half a bin width (unresolved) is replaced by
    ``mean`` and ``std``. The fitted centre is the component's ``mu``: a least-squares fit to all bins averages
    the noise of the whole peak (rms error ≈ σ/sqrt(n), like the mean) while ignoring far outliers.
    ``fit_r2`` = 1 − SS_res/SS_tot on the counts.

    :param edges: (B + 1,); :param counts: (B,).
    :returns: (gauss_mu, gauss_sigma, fit_r2); NaNs for an empty histogram.
    """
    y = np.asarray(counts, dtype=np.float64)
    total = float(y.sum())
    if total <= 0:
        return float("nan"), float("nan"), float("nan")
    width = float(edges[1] - edges[0])
    sigma0 = std if (math.isfinite(std) and std > 0) else width

    def model(_x, amplitude, mu, sigma):
        return binned_gaussian(edges, amplitude, mu, sigma)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in the covariance, which is not used
            (amplitude, mu, sigma), _ = curve_fit(model, None, y, p0=(total, mean, sigma0), maxfev=2000)
        sigma = abs(sigma)
        ok = all(math.isfinite(v) for v in (amplitude, mu, sigma)) and sigma > 0 and amplitude > 0
        ok = ok and edges[0] - (edges[-1] - edges[0]) < mu < edges[-1] + (edges[-1] - edges[0])
    except (RuntimeError, ValueError):
        ok = False
    if not ok:  # fall back to the moments
        amplitude, mu, sigma = total, mean, sigma0
    elif sigma < 0.5 * width and math.isfinite(std) and std > 0:
        # All mass sits in one or two bins: any small sigma (and any centre inside the bin) fits equally well; the
        # data's moments are the better values.
        mu, sigma = mean, std
    return float(mu), float(sigma), _r2(y, binned_gaussian(edges, amplitude, mu, sigma))


def component_stats(
    z: np.ndarray,
    edges: np.ndarray,
    counts: np.ndarray,
    *,
    mu_threshold: float = 0.25,
    hw_threshold: float = 1.5,
) -> pd.DataFrame:
    """One row per component with the columns :data:`COMPONENT_COLUMNS`.

    ``mean``/``std`` are the (population) moments of all values of ``z[:, i]``; ``gauss_*``/``fit_r2`` come from
    :func:`fit_gaussian`; ``mu`` is the post's "central average value": the fit's centre ``gauss_mu`` (which falls
    back to the mean when the fit fails); ``mode`` is the histogram's peak (:func:`peak_centres`) and
    ``half_width`` its FWHM (:func:`half_widths`); ``dominant`` = |mu| >= mu_threshold or half_width >= hw_threshold
    (the post's "dominant components"); ``skew`` and ``kurtosis`` (excess) from :func:`shape_moments`, 0 for a
    Gaussian. Counts, boxes mu ± k·hw and tables all use ``mu``.

    :param z: (n, N); :param edges: (B + 1,); :param counts: (N, B) from :func:`component_histograms`.
    """
    z = _check_z(z)
    counts = np.asarray(counts)
    if counts.shape[0] != z.shape[1] or counts.shape[1] + 1 != len(edges):
        raise InputError(f"counts {counts.shape} do not fit z {z.shape} and {len(edges)} edges")
    mean = z.mean(axis=0, dtype=np.float64)
    std = z.std(axis=0, dtype=np.float64)
    hw = half_widths(edges, counts)
    fits = np.array([fit_gaussian(edges, counts[i], mean[i], std[i]) for i in range(z.shape[1])]).reshape(-1, 3)
    mu = fits[:, 0]
    return pd.DataFrame(
        {
            "component": np.arange(z.shape[1]),
            "mean": mean,
            "std": std,
            "mu": mu,
            "mode": peak_centres(edges, counts),
            "half_width": hw,
            "gauss_mu": fits[:, 0],
            "gauss_sigma": fits[:, 1],
            "fit_r2": fits[:, 2],
            "dominant": dominant_mask(mu, hw, mu_threshold=mu_threshold, hw_threshold=hw_threshold),
            **dict(zip(("skew", "kurtosis"), shape_moments(z, mean))),
        },
        columns=list(COMPONENT_COLUMNS),
    )


def shape_moments(z: np.ndarray, mean: np.ndarray, *, chunk_size: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Skewness m3/m2^1.5 and excess kurtosis m4/m2² − 3 of every component (population central moments m_p, as
    ``scipy.stats.skew``/``kurtosis`` with their defaults). Both are 0 for a Gaussian; a uniform distribution has
    kurtosis −1.2. NaN for a constant component. The powers of z − mean are taken in the data's precision (float32
    for latent vectors) and summed in float64 over row chunks. (N,), (N,) float64."""
    z = _check_z(z)
    mean = np.asarray(mean, dtype=np.float64)
    m2, m3, m4 = (np.zeros(z.shape[1]) for _ in range(3))
    for start, stop in _row_chunks(z.shape[0], chunk_size):
        d = z[start:stop] - mean.astype(z.dtype)
        d2 = d * d
        m2 += d2.sum(axis=0, dtype=np.float64)
        d *= d2
        m3 += d.sum(axis=0, dtype=np.float64)
        d2 *= d2
        m4 += d2.sum(axis=0, dtype=np.float64)
    m2, m3, m4 = m2 / len(z), m3 / len(z), m4 / len(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        constant = m2 <= (1e-12 * np.maximum(np.abs(mean), 1.0)) ** 2
        return np.where(constant, np.nan, m3 / m2**1.5), np.where(constant, np.nan, m4 / m2**2 - 3.0)


def dominant_mask(mu, half_width, *, mu_threshold: float = 0.25, hw_threshold: float = 1.5) -> np.ndarray:
    """(N,) bool: |mu| >= mu_threshold or half_width >= hw_threshold (NaN counts as not dominant)."""
    mu, hw = np.asarray(mu, dtype=np.float64), np.asarray(half_width, dtype=np.float64)
    return (np.abs(mu) >= mu_threshold) | (hw >= hw_threshold)


def summary_counts(z: np.ndarray, components: pd.DataFrame) -> dict[str, float | int]:
    """The post's counting statements ("≤ 25 components with |μ| ≥ 0.25", …) as a JSON-ready dict.

    Keys (also the MLflow metric names ``latent/<key>``): ``n_mu_ge_0.25``, ``n_mu_ge_1`` (|mu| >= …),
    ``n_hw_ge_1``, ``n_hw_ge_1.5``, ``n_hw_ge_3`` (half_width >= …), ``share_mu_lt_0.25`` (fraction of components
    with |mu| < 0.25), ``z_min``, ``z_max`` (over all values) and ``n_dominant``.
    """
    abs_mu = np.abs(components["mu"].to_numpy(dtype=np.float64))
    hw = components["half_width"].to_numpy(dtype=np.float64)
    return {
        "n_mu_ge_0.25": int(np.sum(abs_mu >= 0.25)),
        "n_mu_ge_1": int(np.sum(abs_mu >= 1.0)),
        "n_hw_ge_1": int(np.sum(hw >= 1.0)),
        "n_hw_ge_1.5": int(np.sum(hw >= 1.5)),
        "n_hw_ge_3": int(np.sum(hw >= 3.0)),
        "share_mu_lt_0.25": float(np.mean(abs_mu < 0.25)),
        "z_min": float(np.nanmin(z)),
        "z_max": float(np.nanmax(z)),
        "n_dominant": int(components["dominant"].sum()),
    }
