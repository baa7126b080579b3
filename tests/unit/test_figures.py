"""Every figure an analysis logs is at most 2,000 px on its long side (RunWriter.figure chooses the dpi), checked on
what the three analyses write into a capturing stand-in for the MLflow client."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from analysis import tracking
from analysis.callbacks.dream import record_dreams
from analysis.callbacks.latent import record_latent_analysis
from analysis.callbacks.oip import record_oips
from analysis.settings import DreamSettings, LatentSettings, OIPSettings
from lightning_modules.networks import ConvAutoencoder, MnistCNN


class CapturingClient:
    """Keeps every logged artifact's bytes by artifact path; metrics and stepped images are dropped."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def log_artifact(self, run_id, local_path, artifact_path=None):
        name = Path(local_path).name
        self.files[f"{artifact_path}/{name}" if artifact_path else name] = Path(local_path).read_bytes()

    def log_image(self, *args, **kwargs):
        pass

    def set_tag(self, run_id, key, value):
        self.files[f"tag:{key}"] = str(value).encode()

    def log_batch(self, *args, **kwargs):
        pass


def _png_sizes(client: CapturingClient) -> dict[str, tuple[int, int]]:
    return {path: Image.open(io.BytesIO(data)).size for path, data in client.files.items()
            if path.endswith(".png") and not path.endswith("final.png")}


def test_a_stepped_image_card_shows_the_figure_at_its_own_size():
    client = CapturingClient()
    tracking.RunWriter(client, "run").figure("oip/x.png", Figure(figsize=(8, 6)), step_key="oip/x", step=3)
    stepped = {p: b for p, b in client.files.items() if p.startswith(f"{tracking.IMAGES_DIR}/oip~x+step+3+")}
    png = next(b for p, b in stepped.items() if p.endswith(".png"))
    webp = next(b for p, b in stepped.items() if p.endswith("+compressed.webp"))
    assert png == client.files["oip/x.png"]  # the full image as logged
    # MLflow's log_image would shrink the card's copy to 256 px; ours keeps 880 x 660 (<= THUMBNAIL_PX)
    assert Image.open(io.BytesIO(webp)).size == (880, 660)
    assert client.files[f"tag:{tracking.TAG_LOGGED_IMAGES}"] == b"true"
    big = CapturingClient()
    tracking.RunWriter(big, "run").figure("a/b.png", Figure(figsize=(18, 9)), step_key="a/b", step=0)
    webp = next(b for p, b in big.files.items() if p.endswith(".webp"))
    assert Image.open(io.BytesIO(webp)).size == (tracking.THUMBNAIL_PX, tracking.THUMBNAIL_PX // 2)


def test_a_huge_figure_is_saved_at_most_2000_px_on_its_long_side():
    client = CapturingClient()
    tracking.RunWriter(client, "run").figure("x/huge.png", Figure(figsize=(80, 30)))
    tracking.RunWriter(client, "run").figure("x/small.png", Figure(figsize=(4, 3)))
    sizes = _png_sizes(client)
    assert max(sizes["x/huge.png"]) <= tracking.MAX_FIGURE_PX and max(sizes["x/huge.png"]) >= 1990
    assert sizes["x/small.png"] == (440, 330)  # small figures keep the usual 110 dpi


def test_every_figure_of_every_analysis_fits_2000_px(tmp_path):
    torch.manual_seed(0)
    client = CapturingClient()
    writer = tracking.RunWriter(client, "run")
    ae = ConvAutoencoder(in_channels=1, image_size=32, encoder_filters=[4, 8], encoder_kernels=[3, 3],
                         encoder_strides=[2, 2], decoder_filters=[8], decoder_kernels=[3, 3], decoder_strides=[2, 2],
                         z_dim=128).eval()
    images = torch.rand(300, 1, 32, 32)
    # an untrained encoder makes almost every component "dominant": the biggest correlation heat map there is
    record_latent_analysis(writer, ae, [(images[i : i + 100],) for i in range(0, 300, 100)],
                           LatentSettings(n_random=500, b=[1.0, 3.0], k=[2.0], z_sample=50, n_generate=16,
                                          mu_threshold=0.0), step=0, progress=False,
                           heldout=("val", [(images[:40],)]), val_batches=[(images[:40],)])
    cnn = MnistCNN(conv_filters=(8, 8, 16), dense_units=(8,)).eval()
    record_oips(writer, cnn, OIPSettings(layers=["conv3"], steps=2, shared_scale=True), step=0, progress=False)
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((60, 300)) * 255).astype(np.uint8)).save(photo)
    record_dreams(writer, cnn, DreamSettings(image=str(photo), objective="conv3:5", max_side=200, steps=2, cycles=2,
                                             steps_per_octave=1,
                                             octaves=4), step=0, progress=False)
    sizes = _png_sizes(client)
    assert {tracking.LATENT_HEATMAP_PNG, tracking.LATENT_UNIFORM_HISTOGRAMS_PNG, tracking.LATENT_TRAVERSALS_PNG,
            tracking.LATENT_INTERPOLATIONS_PNG, tracking.LATENT_MAHALANOBIS_PNG, "oip/conv3_random.png",
            "dream/octaves_photo/panels.png"} <= set(sizes)
    too_big = {path: size for path, size in sizes.items() if max(size) > tracking.MAX_FIGURE_PX}
    assert not too_big
    final = Image.open(io.BytesIO(client.files["dream/tiled_photo/final.png"])).size
    assert final == (300, 60)  # the photo's own resolution, not the 200 px it was dreamt at
