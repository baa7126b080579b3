"""The report's HTML (experiments.reports.page): self-contained, generic over the run's folders, every figure and
table in it."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from experiments.reports.page import Interactive, RunFacts, build_report, curve_svg, examples_for

URL_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _png(colour: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 12, 3), colour, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


FACTS = RunFacts(run_id="abc123", name="cnn-sgd", experiment="cnn_mnist_bundled", status="FINISHED",
                 params={"optim.lr": "0.05"}, tags={"kind": "classifier", "health": "ok: loss fell 10x"},
                 metrics={"val/loss": 0.12, "system/cpu": 50.0},
                 histories={"val/loss": [(0, 0.5), (1, 0.12)], "train/loss": [(0, 0.7), (1, 0.2)],
                            "train/lr": [(0, 0.05), (1, 0.005)], "oip/conv1/dead_maps": [(0, 3.0), (1, 1.0)]})
FILES = {"config.yaml": b"optim:\n  lr: 0.05\n", "oip/conv1_random.png": _png(10), "oip/examples_conv1.png": _png(200),
         "oip/activation.csv": b"layer,map,activation\nconv1,0,0.5\nconv1,1,1.25\n", "oip/conv1_random.npz": b"",
         "newanalysis/traversal.png": _png(90), "dream/seed_flower/panels.png": _png(40)}


def test_report_is_self_contained_and_shows_every_figure_and_table():
    page = build_report(FACTS, FILES)
    assert not URL_ATTR.search(page)  # the offline check: no network reference in src or href
    assert "<link" not in page and "<script src" not in page
    images = re.findall(r"<img src='(data:image/png;base64,[^']+)'", page)
    assert len(images) == 4  # every PNG, embedded (the examples ride along with their OIP grid)
    for path in ("oip/conv1_random.png", "newanalysis/traversal.png", "dream/seed_flower/panels.png"):
        assert f"alt='{path}'" in page
    assert "<td>1.25</td>" in page and "conv1_random.npz" in page  # the CSV as a table; arrays listed by name
    assert "ok: loss fell 10x" in page and "class='health ok'" in page
    assert "lr: 0.05" in page  # config.yaml
    # sections: analyses in a fixed order, then a folder no code knows about
    order = [page.index(f"<section id='{s}'>") for s in ("health", "curves", "oip", "dream", "newanalysis", "config")]
    assert order == sorted(order)


def test_an_oip_grid_opens_beside_its_dataset_examples():
    assert examples_for("oip/conv1_random.png", FILES) == "oip/examples_conv1.png"
    assert examples_for("oip/conv2_random.png", FILES) is None  # no examples logged for conv2
    assert examples_for("oip/examples_conv1.png", FILES) is None
    page = build_report(FACTS, FILES)
    grid = re.search(r"<img [^>]*alt='oip/conv1_random.png'[^>]*>", page).group(0)
    assert "data-examples=\"data:image/png;base64," in grid


def test_curves_fit_their_data_and_the_learning_rate_is_on_a_log_axis():
    svg = curve_svg("learning rate", {"train/lr": [(0, 0.05), (1, 0.005)]}, log=True)
    assert "(log scale)" in svg and "epoch 1 → 0.005" in svg
    ticks = [float(t) for t in re.findall(r"class=\"yt\">([^<]+)<", svg)]
    assert min(ticks) == 0.005 and max(ticks) == 0.05  # the axis spans exactly the data
    flat = curve_svg("loss", {"val/loss": [(0, 0.002), (1, 0.002)]})
    ticks = [float(t) for t in re.findall(r"class=\"yt\">([^<]+)<", flat)]
    assert 0.0015 < min(ticks) < 0.002 < max(ticks) < 0.0025  # a constant curve: ±10 %, not ±1


def test_interactive_plots_carry_their_arrays_as_json():
    data = Interactive(histograms={"edges": [0.0, 0.5, 1.0], "counts": [[3, 4]]}, scatter={"z": [[0.1, 0.2]]})
    page = build_report(FACTS, {}, data)
    assert "id='hist'" in page and "id='scat'" in page
    payload = re.search(r"<script type='application/json' id='ld-data'>(.*?)</script>", page).group(1)
    assert '"counts":[[3,4]]' in payload and "</" not in payload
