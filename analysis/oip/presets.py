"""OIP recipes by name (config key ``oip.preset``): the values of the recipe's settings that a preset implies.

* ``lucent`` (default) — Adam on the map's post-ReLU mean with a redirected-ReLU gradient (a silent map is pushed
  up until it fires), 1 px jitter, a blur every 10 steps, pixels clamped to [0, 1]: clean patterns, few dead maps.
* ``reference`` — the reference's plain recipe: gradient ascent on the map's mean (post-ReLU) response with a
  normalised step, no jitter, blur or clamp, and the plain ReLU gradient, so a map that is silent on its start
  image gets no gradient and stays dead, as the reference's dead maps did.

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
    # lr in units of the mean |gradient|: 150 steps move a pixel by at most 1.5, about the data range
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
