"""DeepDream with the 28×28 MNIST CNN (the reference's "Deep Dreams of a CNN trained on MNIST data").

Every mode maximises ``dream.response`` of its objective: ``post_relu`` (default; the mean activation the network
passes on, the OIPs' objective) or ``pre_relu`` (the conv output). A post-ReLU objective that is 0 on the start image
(the map is off everywhere) gets the pre-ReLU gradient until it fires (:func:`~analysis.dream.common.push_silent`).

Three modes, each a pure function of a torch model, a grayscale image (H, W) in [0, 1] and the ``dream`` settings
(:class:`analysis.settings.DreamSettings`), returning a frozen dataclass of numpy arrays. All use the OIP engine
:func:`analysis.oip.ascent.ascend` for the gradient steps.

* :func:`dream_seed` — the reference's recipe: dream at 28×28, upscale, re-add the lost detail, repeat.
* :func:`dream_octaves` — classical DeepDream: octave pyramid, sliding 28×28 windows, jitter, detail re-injection.
* :func:`dream_tiled` — a large photo in 28×28 tiles with a random tiling offset per step.

Modules: :mod:`~analysis.dream.images` (load, bicubic rescale, detail, contrast stretch),
:mod:`~analysis.dream.windows` (sliding windows, tiles), :mod:`~analysis.dream.common` (objective specs,
evaluation, result base), one module per mode, :mod:`~analysis.dream.modes` (the modes by name). Pure
torch/numpy: no Lightning, no MLflow, no files written.
"""

from analysis.dream.common import DreamResult, dream_objective, evaluate, make_objective, mean_over_windows, push_silent
from analysis.dream.images import (MIN_SIDE, contrast_stretch, default_image, detail, downscale, load_image, resize,
                                   shrink, to_array, to_tensor, transfer_change, upscale)
from analysis.dream.modes import DreamMode, run_dream
from analysis.dream.octaves import OctaveDream, dream_octaves, octave_shapes
from analysis.dream.seed import SeedDream, dream_seed
from analysis.dream.tiled import TiledDream, dream_tiled
from analysis.dream.windows import Windowed, coverage, tiles, untile, window_starts, windows

__all__ = [
    "MIN_SIDE", "DreamMode", "DreamResult", "OctaveDream", "SeedDream", "TiledDream", "Windowed", "contrast_stretch",
    "coverage", "default_image", "detail", "downscale", "dream_objective", "dream_octaves", "dream_seed", "dream_tiled", "evaluate",
    "load_image", "make_objective", "mean_over_windows", "octave_shapes", "push_silent", "resize", "run_dream", "shrink", "tiles",
    "to_array", "to_tensor", "transfer_change", "untile", "upscale", "window_starts", "windows",
]
