"""Seed statistics of a sweep and their figures: known answers, sizes, the keys pooled."""

import numpy as np
import pandas as pd
import pytest

from analysis import tracking
from analysis.plots import sweep as plots
from analysis.sweep_stats import curve_stats, summarize


def _values() -> pd.DataFrame:
    rows = []
    for lr, losses in (("0.01", [1.0, 2.0, 4.0]), ("0.1", [0.5])):
        for seed, loss in enumerate(losses):
            rows.append({"point": f"optim.lr={lr}", "optim.lr": lr, "metric": "val/loss", "value": loss})
            rows.append({"point": f"optim.lr={lr}", "optim.lr": lr, "metric": "val/acc", "value": 0.1 * seed})
    return pd.DataFrame(rows)


def test_summary_pools_seeds_with_sample_std():
    summary = summarize(_values(), ["optim.lr"])
    assert list(summary.columns) == ["point", "optim.lr", "metric", "n", "mean", "std"]
    assert summary["point"].tolist() == ["optim.lr=0.01"] * 2 + ["optim.lr=0.1"] * 2  # points as they came
    row = summary.set_index(["point", "metric"]).loc[("optim.lr=0.01", "val/loss")]
    assert row["n"] == 3 and row["mean"] == pytest.approx(7 / 3)
    assert row["std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1)) and row["std"] == pytest.approx(1.527525, 1e-6)
    single = summary.set_index(["point", "metric"]).loc[("optim.lr=0.1", "val/loss")]
    assert single["n"] == 1 and single["mean"] == 0.5 and np.isnan(single["std"])  # one seed: no spread


def test_summary_of_nothing_has_the_columns():
    empty = pd.DataFrame(columns=["point", "a", "metric", "value"])
    assert list(summarize(empty, ["a"]).columns) == ["point", "a", "metric", "n", "mean", "std"]


def test_curve_stats_per_epoch_with_runs_of_different_length():
    stats = curve_stats({"p": [(np.array([0, 1, 2]), np.array([3.0, 2.0, 1.0])), (np.array([0, 1]), np.array([5.0, 4.0]))],
                         "q": [(np.array([0]), np.array([1.0]))]})
    p = stats[stats["point"] == "p"]
    assert p["epoch"].tolist() == [0, 1, 2] and p["n"].tolist() == [2, 2, 1]
    assert p["mean"].tolist() == [4.0, 3.0, 1.0]
    assert p["std"].iloc[0] == pytest.approx(np.sqrt(2)) and np.isnan(p["std"].iloc[2])
    assert stats["point"].tolist()[-1] == "q"


@pytest.mark.parametrize("key", ["optim.lr", "trainer.max_epochs"])
def test_metric_vs_value_draws_a_band_per_line_within_2000_px(key):
    values = _values().assign(**{"trainer.max_epochs": lambda f: np.where(f["optim.lr"] == "0.1", "2", "1")})
    summary = summarize(values, ["optim.lr", "trainer.max_epochs"])
    fig = plots.metric_vs_value(summary, key, ["val/loss", "val/acc"], ["optim.lr", "trainer.max_epochs"])
    w, h = fig.get_size_inches() * 110
    assert w <= 2000 and h <= 2000
    ax = fig.axes[0]
    assert ax.get_title() == "val/loss" and ax.get_xlabel() == key
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # one line and one ± std band per other-key combination
    x, y = ax.lines[0].get_data()
    assert y[0] == pytest.approx(7 / 3)


def test_many_metrics_and_categorical_values_stay_within_2000_px():
    rows = [{"point": f"b={b}", "analysis.b": b, "metric": f"latent/m{i}", "value": float(i + j)}
            for b in ("[1,2]", "[1,2,3]") for i in range(20) for j in range(2)]
    summary = summarize(pd.DataFrame(rows), ["analysis.b"])
    fig = plots.metric_vs_value(summary, "analysis.b", sorted(set(summary["metric"])), ["analysis.b"])
    assert max(fig.get_size_inches() * 110) <= 2000
    assert len([a for a in fig.axes if a.get_visible()]) == plots.MAX_PANELS
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["[1,2]", "[1,2,3]"]


def test_mean_std_curves_one_line_per_point():
    stats = curve_stats({"p": [(np.arange(3), np.array([3.0, 2.0, 1.0])), (np.arange(3), np.array([3.0, 2.0, 2.0]))],
                         "q": [(np.arange(3), np.array([1.0, 1.0, 1.0]))]})
    fig = plots.mean_std_curves(stats, "val/loss")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["p", "q"]
    assert ax.lines[0].get_data()[1].tolist() == [3.0, 2.0, 1.5]
    assert max(fig.get_size_inches() * 110) <= 2000


@pytest.mark.parametrize("key, pooled", [
    ("val/loss", True), ("test/acc", True), ("latent/hit_b1.5_k2", True), ("oip/conv1/dead_maps", True),
    ("dream/seed/objective_gain", True), ("train/lr", False), ("system/cpu_utilization_percentage", False),
    ("oip/conv1/mean_final_activation", False), ("dream/seed/objective_after", False),
])
def test_the_metrics_a_sweep_pools(key, pooled):
    assert tracking.is_sweep_summary_metric(key) is pooled
