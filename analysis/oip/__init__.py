"""OIPs: input patterns that maximise conv maps, by gradient ascent in pixel space (lucent-style pieces).

* :mod:`~analysis.oip.hooks` — forward hooks that capture layer outputs by name.
* :mod:`~analysis.oip.objectives` — what to maximise (``channel``, ``batch_channels``, ``layer``, ``"conv3:56"``).
* :mod:`~analysis.oip.params` — seeded starting images (``random``, ``fluct_L``) and the pixel parameterisation.
* :mod:`~analysis.oip.transforms` — ``jitter``, ``blur``, ``clip`` factories and ``compose``.
* :mod:`~analysis.oip.ascent` — ``ascend``, the one ascent engine (also used by DeepDream).
* :mod:`~analysis.oip.render` — ``render_oips`` (all maps of a layer as one batch) and ``oip_table``.
* :mod:`~analysis.oip.presets` — named recipes (``lucent``, the reference's plain ``reference``).
* :mod:`~analysis.oip.examples` — ``top_examples``: every map's most activating dataset images, in one pass.
* :mod:`~analysis.oip.predictions` — ``class_probabilities`` of the OIPs and their ``prediction_table``.

Pure torch/numpy: no Lightning, no MLflow, no files.
"""

from analysis.oip.ascent import AscentOptimizer, AscentResult, ascend
from analysis.oip.hooks import activations, capture, conv_layer_names, map_count
from analysis.oip.objectives import (Objective, Response, batch_channels, channel, layer, parse_objective,
                                     parse_target)
from analysis.oip.params import Init, fluctuations, make_init, pixel_image, uniform_noise
from analysis.oip.presets import PRESET_VALUES, OIPPreset
from analysis.oip.render import OIPResult, oip_table, render_all, render_oips
from analysis.oip.transforms import blur, clip, compose, jitter

__all__ = [
    "AscentOptimizer", "AscentResult", "Init", "OIPPreset", "OIPResult", "Objective", "PRESET_VALUES", "Response",
    "activations", "ascend", "batch_channels",
    "blur", "capture", "channel", "clip", "compose", "conv_layer_names", "fluctuations", "jitter", "layer",
    "make_init", "map_count", "oip_table", "parse_objective", "parse_target", "pixel_image", "render_all",
    "render_oips", "uniform_noise",
]
