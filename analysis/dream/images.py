"""Image operations of the dream recipes: loading, bicubic rescaling, lost detail, contrast stretch.

Images at the edge are numpy arrays; inside they are torch tensors (1, 1, H, W), grayscale, float in [0, 1].

Bicubic rescaling uses ``F.interpolate(mode="bicubic", align_corners=False, antialias=True)``. With
``antialias=True`` torch uses Pillow's resampling filter (cubic kernel a = -0.5 whose support widens with the
downscale factor) and matches ``PIL.Image.resize(..., BICUBIC)`` to ~1e-6 — the reference's "bicubic
interpolation". Plain bicubic (``antialias=False``) would sample only 4×4 source pixels per output pixel and
alias badly when a 427×640 photo shrinks to 28×28.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from latentdream.errors import InputError

MIN_SIDE = 28  # the CNN's input side: smaller images cannot be dreamt on
# Our own limit, far below Pillow's (89 M pixels warns, 178 M refuses): a 24-megapixel camera photo fits, a 74-byte
# PNG whose header claims 30000×30000 does not. Checked from the header, before any pixel is decoded.
MAX_PIXELS = 25_000_000
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's convert("L")


def load_image(path_or_array: str | Path | np.ndarray, gray: bool = True, *, min_side: int = MIN_SIDE) -> np.ndarray:
    """Read an image file (or take an array) as float32 in [0, 1].

    :param path_or_array: a file Pillow can read, or an array (H, W), (H, W, 3) or (H, W, 4); integer arrays are
        divided by their dtype's maximum (255 for uint8), float arrays must already lie in [0, 1].
    :param gray: convert to grayscale with Pillow's luma weights L = 0.299 R + 0.587 G + 0.114 B.
    :return: (H, W) if ``gray`` else (H, W, 3).
    :raises InputError: missing file, a file that is not an image, an image smaller than ``min_side`` px, or one
        whose header claims more than :data:`MAX_PIXELS` pixels (refused before decoding).
    """
    if isinstance(path_or_array, (str, Path)):
        path = Path(path_or_array)
        name = str(path)
        if path.is_dir():
            raise InputError(f"image file {name!r} is a directory; give an image file")
        if not path.is_file():
            raise InputError(f"image file {name!r} does not exist")
        try:
            with Image.open(path) as img:  # reads the header only
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise InputError(f"image file {name!r} is {width}×{height} px ({width * height:,} pixels); at most "
                                     f"{MAX_PIXELS:,} pixels are decoded")
                arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except InputError:
            raise
        except Image.DecompressionBombError as err:  # Pillow's own check in open(), above twice its warning size
            raise InputError(f"image file {name!r} claims more pixels than Pillow decodes ({err}); at most "
                             f"{MAX_PIXELS:,} pixels are decoded").with_traceback(None) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            # what a malformed header gives (ValueError, SyntaxError in some plugins)
            raise InputError(f"{name!r} is not a readable image file ({type(err).__name__})") from None
    else:
        name = "image array"
        arr = _array_to_unit(np.asarray(path_or_array))
    if arr.ndim == 3:
        arr = arr[..., :3]  # drop alpha
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    if arr.ndim == 2 and not gray:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and gray:
        arr = arr @ _LUMA
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise InputError(f"{name} is {h}×{w} px; the CNN needs at least {min_side}×{min_side}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _array_to_unit(arr: np.ndarray) -> np.ndarray:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
        raise InputError(f"image array has shape {arr.shape}; allowed: (H, W), (H, W, 3) or (H, W, 4)")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"image array has dtype {arr.dtype}; allowed: integer or float")
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
        raise InputError(f"float image array has values in [{arr.min():g}, {arr.max():g}]; allowed: [0, 1]")
    return arr.astype(np.float32)


def default_image(gray: bool = True) -> np.ndarray:
    """scikit-learn's bundled ``flower.jpg`` (427×640, a flower as in the reference's roses), float32 in [0, 1]."""
    from sklearn.datasets import load_sample_image  # lazy: sklearn is slow to import and only needed here

    return load_image(load_sample_image("flower.jpg"), gray=gray)


def to_tensor(image: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W) array or tensor → float32 tensor (1, 1, H, W) on ``device``; a 4-D tensor passes unchanged."""
    t = torch.as_tensor(np.array(image, dtype=np.float32, copy=True) if isinstance(image, np.ndarray) else image)
    if t.ndim == 2:
        t = t[None, None]
    if t.ndim != 4 or t.shape[:2] != (1, 1):
        raise InputError(f"a grayscale image (H, W) is needed, got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.float32)


def to_array(image: torch.Tensor) -> np.ndarray:
    """Tensor (1, 1, H, W) or (n, 1, h, w) → float32 numpy (H, W) or (n, h, w), detached, on the CPU."""
    t = image.detach().to("cpu", torch.float32)
    return (t[0, 0] if t.shape[0] == 1 else t[:, 0]).numpy()


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling of (B, C, H, W) to (B, C, *size), Pillow-exact (see module docstring).

    Resizing to the same size returns ``image`` itself, so round trips through an unchanged size are exact.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True)


def downscale(image: torch.Tensor, side: int = MIN_SIDE) -> torch.Tensor:
    """Squash (B, C, H, W) to (B, C, side, side) bicubically — the CNN's view; the aspect ratio is not kept."""
    return resize(image, (side, side))


def upscale(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic (B, C, h, w) → (B, C, *shape), e.g. a 28×28 dream back to the photo's (H, W)."""
    return resize(image, shape)


def detail(original: torch.Tensor, side: int = MIN_SIDE) -> torch.Tensor:
    """The detail lost by the round trip: ``original − upscale(downscale(original))``, same shape as ``original``.

    Re-injection ``upscale(dream, (H, W)) + detail`` gives ``original`` back exactly when ``dream`` is the
    unchanged ``downscale(original)``.
    """
    return original - upscale(downscale(original, side), tuple(original.shape[-2:]))


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` (H, W) bicubically shrunk so that its longer side is at most ``max_side`` (dreams scale with the
    pixel count), each side at least :data:`MIN_SIDE`; returned unchanged when it is small enough."""
    longer = max(image.shape)
    if longer <= max_side:
        return image
    scale = max_side / longer
    shape = (max(MIN_SIDE, round(image.shape[0] * scale)), max(MIN_SIDE, round(image.shape[1] * scale)))
    return to_array(resize(to_tensor(image), shape)).clip(0, 1).astype(np.float32)


def transfer_change(full: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Apply the change a dream made to a shrunk photo to the photo at its full resolution.

    ``clip(full + upscale(after − before, full.shape), 0, 1)``: the change is bicubically upscaled and added, so the
    full photo keeps the fine detail the dream never saw — the reference's detail re-injection, since
    ``full + up(after − before) = up(after) + (full − up(before))`` when ``before`` is ``full`` shrunk. When nothing
    was shrunk (same shapes) the result is ``after`` itself (up to clipping).

    :param full: (H, W) the photo in [0, 1]; :param before, after: (h, w) the shrunk photo and its dream.
    :returns: (H, W) float32 in [0, 1].
    """
    before, after = np.asarray(before, dtype=np.float32), np.asarray(after, dtype=np.float32)
    if before.shape != after.shape:
        raise InputError(f"before and after must have the same shape, got {before.shape} and {after.shape}")
    change = to_array(upscale(to_tensor(after - before), tuple(np.shape(full))))
    return np.clip(np.asarray(full, dtype=np.float32) + change, 0.0, 1.0).astype(np.float32)


def contrast_stretch(image: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Widen the value distribution: map the ``low_pct`` and ``high_pct`` percentiles to 0 and 1, clip the rest.

    ``out = clip((x − p_low) / (p_high − p_low), 0, 1)``; the reference's "adjustment of the width of the value
    distribution" after re-adding details. A flat image (p_high = p_low) comes back clipped to [0, 1], unchanged
    otherwise.
    """
    if not 0 <= low_pct < high_pct <= 100:
        raise InputError(f"contrast_stretch needs 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [low_pct, high_pct])
    if hi <= lo:
        return np.clip(image, 0.0, 1.0)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
