"""OIP recipes by name (config key ``oip.preset``): the values of the recipe's settings that a preset implies.

* ``lucent`` (default) — Adam on the map's post-ReLU mean with a redirected-ReLU gradient (a silent map is pushed
  up until it fires), 1 px jitter, a blur every 10 steps, pixels clamped to [0, 1]: clean patterns, few dead maps.
* ``reference`` — the reference's plain recipe: gradient ascent on the map's mean (post-ReLU) response with a
  normalised step, no jitter, blur or clamp, and the plain ReLU gradient, so a map that is silent on its start
  image gets no gradient and stays dead, as the reference's dead maps did.

  Its step is ``x += lr · g / mean|g|`` per image: it moves the pixels by ``lr`` *on average* (mean |Δx| = lr
  exactly), but a pixel where the gradient concentrates moves by ``lr · |g_i| / mean|g|``, up to ``lr · N`` for N
  pixels (7.84 at 28×28), and nothing clamps the result. So the step is not bounded per pixel: 150 steps of 0.01
  give each pixel a path of 1.5 on average, and on MNIST CNNs trained for 2 epochs its conv3 OIPs spanned −11.2 to
  52.3 and −13.7 to 53 on data in [0, 1]. The maps' activations on such patterns (conv3: up to 79 on the first
  CNN, where ``lucent``'s reached 4.2) are not comparable with those of ``lucent`` (pixels clamped to [0, 1]); the
  OIP grid's title says so (:func:`comparability_note`).

A preset is one row of :data:`PRESET_VALUES`. The settings named there default to None in
:class:`analysis.settings.OIPSettings`, meaning "the preset's value"; :func:`resolve` fills them in, so a value the
user gave (``oip.preset=reference oip.jitter=2``) always wins over the preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from analysis.oip.ascent import AscentOptimizer


class OIPPreset(StrEnum):
    """Named OIP recipes (config key ``oip.preset``)."""

    lucent = "lucent"
    reference = "reference"


PRESET_VALUES: dict[OIPPreset, dict[str, Any]] = {
    OIPPreset.lucent: dict(optimizer=AscentOptimizer.adam, lr=0.05, jitter=1, blur_every=10, clip=True, redirect=True),
    # lr in units of the mean |gradient| per step: mean |Δx| = 0.01, unbounded per pixel and unclamped (see above)
    OIPPreset.reference: dict(optimizer=AscentOptimizer.normalized, lr=0.01, jitter=0, blur_every=0, clip=False,
                              redirect=False),
}


def resolve(preset: OIPPreset | str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's settings with every value of ``given`` that is not None in their place.

    :param given: the settings as the user left them (None: not set).
    :returns: {setting: value} for every setting the preset defines.
    """
    values = PRESET_VALUES[OIPPreset(preset)]
    return {key: value if given.get(key) is None else given[key] for key, value in values.items()}


def comparability_note(preset: OIPPreset | str, patterns) -> str | None:
    """One line for an OIP grid's title when its activations cannot be compared with the default preset's: for
    ``reference``, the unclamped pixel range of ``patterns`` (an array) next to the data's [0, 1]; else None."""
    if OIPPreset(preset) != OIPPreset.reference:
        return None
    lo, hi = float(patterns.min()), float(patterns.max())
    return (f"reference preset: unclamped normalised steps, pixels span [{lo:.3g}, {hi:.3g}] (data: [0, 1]); "
            f"activations not comparable with the {OIPPreset.lucent} preset's")
