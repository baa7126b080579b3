"""Image bombs for ``dream --image`` / ``dream.image``: a header claiming more than MAX_PIXELS pixels is refused before a
pixel is decoded — also Pillow's own bomb sizes, which it would otherwise decode (89 M to 178 M) or raise as a traceback."""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from PIL import Image

from analysis.dream.images import MAX_PIXELS, load_image
from experiments.run.config import load_experiment
from latentdream.errors import InputError


def _png_header_only(path, width: int, height: int) -> None:
    """A ~70-byte PNG whose header claims width×height (one tiny compressed row of data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [30000, 12000, 5001])  # Pillow refuses, Pillow would decode, just over ours
def test_a_png_claiming_too_many_pixels_is_refused_from_its_header(tmp_path, side):
    path = tmp_path / "bomb.png"
    _png_header_only(path, side, side)
    assert side * side > MAX_PIXELS and path.stat().st_size < 100
    start = time.monotonic()
    with pytest.raises(InputError, match=f"at most {MAX_PIXELS:,} pixels are decoded") as caught:
        load_image(str(path))
    assert time.monotonic() - start < 1
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_checked_from_their_header_too(tmp_path, fmt):
    path = tmp_path / f"big.{fmt.lower()}"
    Image.new("L", (5200, 5000)).save(path, format=fmt)  # 26 M pixels: over the limit
    with pytest.raises(InputError, match="at most"):
        load_image(str(path))


def test_the_dream_image_setting_is_refused_before_a_run_exists(tmp_path):
    path = tmp_path / "bomb.png"
    _png_header_only(path, 30000, 30000)
    with pytest.raises(InputError, match="at most"):
        load_experiment("cnn_mnist_bundled", [f"dream.image={path}"])


def test_an_image_below_the_limit_still_loads(tmp_path):
    path = tmp_path / "ok.png"
    Image.new("L", (300, 200), 128).save(path)
    assert load_image(str(path)).shape == (200, 300)
