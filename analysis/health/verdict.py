"""The health verdict: the numbers measured on a trained network in, ``ok`` or its reasons out.

Each reason is one short line that starts with its kind and says what was measured, e.g.
``saturated: 99.9 % of decoder outputs at 0 or 1``; the run's tag ``health`` is ``ok`` or the reasons joined by
``"; "``, and :meth:`Verdict.metrics` are the ``health/*`` metrics behind it. Pure: no torch, Lightning or MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from analysis import tracking
from analysis.health.settings import HealthSettings

NOT_LEARNING, SATURATED, COLLAPSED, SILENT = "not_learning", "saturated", "collapsed", "silent"


@dataclass(frozen=True)
class HealthNumbers:
    """What a run's health is judged by (None: not measured, e.g. ``saturated_outputs`` of a CNN).

    :param val_losses: ``val/loss`` of every epoch, in order.
    :param saturated_outputs: fraction of the decoder's outputs on validation images at 0 or 1.
    :param pc1_share: the first principal component's share of the validation latents' variance.
    :param silent_maps: conv layer → fraction of its maps that never fire on validation images.
    """

    val_losses: Sequence[float] = ()
    saturated_outputs: float | None = None
    pc1_share: float | None = None
    silent_maps: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """``reasons`` (empty: healthy) and the numbers they came from."""

    reasons: tuple[str, ...]
    numbers: HealthNumbers

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def tag(self) -> str:
        """The value of the run's tag ``health``: ``ok`` or every reason, joined by ``"; "``."""
        return tracking.HEALTH_OK if self.ok else "; ".join(self.reasons)

    def metrics(self) -> dict[str, float]:
        """The ``health/*`` metrics: ``health/ok`` (1 or 0) and the numbers measured — ``health/val_loss_change``,
        ``health/saturated_outputs``, ``health/pc1_share``, ``health/silent_maps_<layer>`` (fractions; one name level, so the UI shows one health section)."""
        n = self.numbers
        values = {"ok": float(self.ok), "val_loss_change": loss_change(n.val_losses),
                  "saturated_outputs": n.saturated_outputs, "pc1_share": n.pc1_share,
                  **{f"silent_maps_{layer}": v for layer, v in n.silent_maps.items()}}
        return {tracking.health_metric(name): float(v) for name, v in values.items() if v is not None}


def loss_change(values: Sequence[float]) -> float | None:
    """How much a loss moved over its epochs, relative to its size: (max − min) / max(|max|, |min|); 0 for a loss
    that never moved, None for fewer than 2 values or non-finite ones (the NaN guard's business)."""
    values = [float(v) for v in values]
    if len(values) < 2 or not all(v == v and abs(v) != float("inf") for v in values):
        return None
    high, low = max(values), min(values)
    scale = max(abs(high), abs(low))
    return (high - low) / scale if scale > 0 else 0.0


def percent(fraction: float) -> str:
    """``0.999 → "99.9 %"``, ``0.6 → "60 %"``: three significant digits, never rounded up to 100 % unless it is."""
    value = 100 * fraction
    text = f"{value:.3g}"
    if float(text) >= 100 and fraction < 1:
        text = f"{value:.4g}" if value < 99.995 else "99.99"
    return f"{text} %"


def judge(numbers: HealthNumbers, settings: HealthSettings) -> Verdict:
    """The verdict on ``numbers`` under the thresholds of ``settings`` (see :class:`HealthSettings`); the reasons
    in the order not_learning, saturated, collapsed, silent (the worst layer)."""
    reasons = []
    change = loss_change(numbers.val_losses)
    if change is not None and len(numbers.val_losses) >= settings.min_epochs and change < settings.min_loss_change:
        reasons.append(f"{NOT_LEARNING}: val/loss changed < {percent(settings.min_loss_change)} over "
                       f"{len(numbers.val_losses)} epochs")
    if numbers.saturated_outputs is not None and numbers.saturated_outputs >= settings.max_saturated:
        reasons.append(f"{SATURATED}: {percent(numbers.saturated_outputs)} of decoder outputs at 0 or 1")
    if numbers.pc1_share is not None and numbers.pc1_share >= settings.max_pc1_share:
        reasons.append(f"{COLLAPSED}: 1 principal component explains {percent(numbers.pc1_share)} of the latent "
                       "variance")
    if numbers.silent_maps:
        layer = max(numbers.silent_maps, key=lambda name: numbers.silent_maps[name])
        if numbers.silent_maps[layer] >= settings.max_silent:
            reasons.append(f"{SILENT}: {percent(numbers.silent_maps[layer])} of {layer}'s maps never fire on "
                           "validation data")
    return Verdict(tuple(reasons), numbers)
