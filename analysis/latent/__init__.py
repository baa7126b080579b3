"""Latent-space statistics of autoencoder vectors (post "latent space fragmentation – II"), one module per concern.

Pure numpy/scipy/pandas: latent vectors ``z`` (n, N) in, arrays / DataFrames / a frozen :class:`LatentReport` out.
No torch, Lightning, MLflow or files.

The pieces, in the order of the post:

* :mod:`~analysis.latent.histograms` — per-component number distributions (:func:`component_histograms`), the
  histogram's ``mode`` and full width at half maximum ``half_width`` (the post's "hw");
* :mod:`~analysis.latent.fits` — the Gaussian fit whose centre is ``mu`` (the post's central average), the
  per-component table with the "dominant" flag (:func:`component_stats`), and the post's counting statements as
  numbers (:func:`summary_counts`);
* :mod:`~analysis.latent.hits` — "method 2": vectors uniform in [-b, b]^N and how many of them land inside the box
  mu_i ± k·hw_i for every component (:func:`hit_counts`, fast and chunked; :func:`hit_counts_reference`, plain);
* :mod:`~analysis.latent.radius` — vector lengths ("radii") of data and method-2 vectors with the analytic moments;
* :mod:`~analysis.latent.correlation` — correlations of dominant components and their clustered order;
* :mod:`~analysis.latent.pca` — mean, covariance and the PCA spectrum;
* :mod:`~analysis.latent.sampling` — samplers for generating latent vectors (uniform, per-component Gaussian,
  multivariate Gaussian);
* :mod:`~analysis.latent.report` — :func:`analyze_latents`, all of the above at once;

and what a researcher asks next (issue 21):

* :mod:`~analysis.latent.paths` — traversals of the widest components from the mean vector, linear and spherical
  interpolations, the share of a vector's components inside the region (:func:`in_region_share`);
* :mod:`~analysis.latent.ellipsoid` — squared Mahalanobis distances against χ²_N and their KS statistic;
* :mod:`~analysis.latent.heldout` — held-out vectors against the training region;
* :mod:`~analysis.latent.followups` — :func:`analyze_follow_ups`: those and the hit grid in principal axes.

Conventions: ``N`` is the latent dimension; component values and widths are in latent units; every random draw
comes from an explicit seed or ``np.random.Generator``.
"""

from analysis.latent.correlation import correlation_order, dominant_correlation, top_two_dominant
from analysis.latent.ellipsoid import ks_chi2, mahalanobis_squared, mahalanobis_table, principal_coordinates
from analysis.latent.fits import (COMPONENT_COLUMNS, binned_gaussian, component_stats, dominant_mask, fit_gaussian,
                                  shape_moments, summary_counts)
from analysis.latent.followups import FollowUps, analyze_follow_ups
from analysis.latent.heldout import heldout_table, region_fractions
from analysis.latent.histograms import (FWHM_PER_SIGMA, component_histograms, half_widths, peak_centres,
                                        uniform_histograms)
from analysis.latent.hits import HIT_COLUMNS, hit_counts, hit_counts_reference, k_scores, region_fraction
from analysis.latent.paths import (in_region_share, interpolation_table, interpolation_vectors, lerp, slerp,
                                   traversal_vectors, widest_components)
from analysis.latent.pca import latent_moments, n_components_for, pca_spectrum, principal_axes, spectrum_of
from analysis.latent.radius import (RADIUS_COLUMNS, radii, radius_samples, radius_summary, radius_table,
                                    uniform_label, uniform_radii, uniform_radius_moments)
from analysis.latent.report import PCA_TARGET, RADIUS_SAMPLES, LatentReport, analyze_latents
from analysis.latent.sampling import sample_component_gaussian, sample_multivariate, sample_uniform, spread

__all__ = [
    "COMPONENT_COLUMNS", "FWHM_PER_SIGMA", "HIT_COLUMNS", "PCA_TARGET", "RADIUS_COLUMNS", "RADIUS_SAMPLES",
    "LatentReport", "analyze_latents", "binned_gaussian", "component_histograms", "component_stats",
    "correlation_order", "dominant_correlation", "dominant_mask", "fit_gaussian", "half_widths", "hit_counts",
    "hit_counts_reference", "k_scores", "latent_moments", "n_components_for", "pca_spectrum", "peak_centres",
    "radii", "radius_samples", "radius_summary", "radius_table", "region_fraction", "sample_component_gaussian",
    "sample_multivariate", "sample_uniform", "spread", "summary_counts", "top_two_dominant", "uniform_histograms",
    "uniform_label", "uniform_radii", "uniform_radius_moments",
    "FollowUps", "analyze_follow_ups", "heldout_table", "in_region_share", "interpolation_table",
    "interpolation_vectors", "ks_chi2", "lerp", "mahalanobis_squared", "mahalanobis_table", "principal_axes",
    "principal_coordinates", "region_fractions", "shape_moments", "slerp", "spectrum_of", "traversal_vectors",
    "widest_components",
]
