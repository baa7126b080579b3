"""Runs tables, comparison tables and figures, input checks of ``compare`` (with a fake client), reachability."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from analysis.plots import compare as plots
from experiments.commands import runs
from experiments.run import store
from latentdream.errors import InputError
from tests.ui import free_port


# --- reachability ------------------------------------------------------------------------------------------------
def test_closed_port_fails_fast_with_one_clear_line():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(InputError, match=rf"^tracking server {uri} is not reachable: .*refused"):
        store.check_reachable(uri, timeout=5)
    assert time.monotonic() - start < 2


def test_runs_and_compare_check_the_server_before_any_request():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    for call in (lambda: runs.runs_table(None, uri), lambda: runs.compare_runs(["a", "b"], uri)):
        with pytest.raises(InputError, match="is not reachable"):
            call()
    assert time.monotonic() - start < 3  # MLflow's own client would retry for minutes


def test_silent_server_times_out_after_the_timeout():
    # accepts the TCP connection but never answers: only the timeout can end the wait
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(InputError, match="not reachable: .*timed out"):
            store.check_reachable(uri, timeout=0.5)
        assert 0.4 < time.monotonic() - start < 3


def test_any_http_answer_counts_as_reachable_and_local_stores_pass():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store.check_reachable(f"http://127.0.0.1:{server.server_port}/", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
    store.check_reachable("sqlite:////nonexistent/mlflow.db")  # nothing to reach: no error


def test_fail_fast_env_keeps_what_the_user_set():
    env = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
    store.apply_http_fail_fast(env)
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


# --- tables -------------------------------------------------------------------------------------------------------
def test_params_diff_keeps_only_differing_and_missing_params():
    diff = runs.params_diff({"a": {"lr": "0.1", "seed": "1", "opt": "sgd"},
                             "b": {"lr": "0.01", "seed": "1"}})
    assert list(diff.columns) == ["param", "a", "b"]
    assert diff.to_dict("records") == [{"param": "lr", "a": "0.1", "b": "0.01"},
                                       {"param": "opt", "a": "sgd", "b": ""}]


def test_final_metrics_one_column_per_run_nan_where_missing():
    table = runs.final_metrics({"a": {"val/loss": 0.5, "val/acc": 0.9}, "b": {"val/loss": 0.4}})
    assert list(table["metric"]) == ["val/acc", "val/loss"]
    assert table.loc[1, "b"] == 0.4 and np.isnan(table.loc[0, "b"])


def test_runs_columns_and_text():
    found = pd.DataFrame({
        "run_id": ["r1", "r2"], "experiment_id": ["1", "2"], "status": ["FINISHED", "FAILED"],
        "start_time": pd.to_datetime(["2026-01-02 03:04:05", "2026-01-01 00:00:00"], utc=True),
        "tags.mlflow.runName": ["x", "y"], "tags.kind": ["classifier", "autoencoder"],
        "params.optim.lr": ["0.05", "0.001"], "metrics.val/loss": [0.25, 0.125], "metrics.val/acc": [0.9, np.nan],
        "metrics.test/acc": [np.nan, np.nan],
    })
    table = runs._select_columns(found, {"1": "cnn", "2": "ae"})
    assert list(table["experiment"]) == ["cnn", "ae"]
    assert "test/acc" not in table and "optim.lr" in table and "val/acc" in table  # all-NaN columns dropped
    text = runs.format_runs(table)
    assert "2026-01-02 03:04" in text and "0.125" in text and "FAILED" in text
    assert runs.format_runs(table.iloc[:0]) == "no runs"


def test_runs_fit_an_80_column_terminal_keeping_the_run_id():
    n = 3
    found = pd.DataFrame({
        "run_id": [f"{i:032x}" for i in range(n)], "experiment_id": ["1"] * n, "status": ["FINISHED"] * n,
        "start_time": pd.to_datetime(["2026-01-02 03:04:05"] * n, utc=True),
        "tags.mlflow.runName": ["a-very-long-run-name-from-a-sweep-point-optim.lr=0.01"] * n,
        **{f"tags.{t}": ["classifier"] * n for t in ("kind", "model", "dataset")},
        **{f"params.{k}": ["0.05"] * n for k in runs.KEY_CONFIG},
        **{f"metrics.{k}": [0.123456] * n for k in runs.KEY_METRICS},
    })
    table = runs._select_columns(found, {"1": "cnn"})
    wide = runs.format_runs(table)
    assert max(map(len, wide.splitlines())) > 160  # what used to wrap
    text = runs.format_runs(table, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines[:-1]) and lines[-1].startswith("(")
    assert f"{2:032x}" in text and "FINISHED" in text and "a-very-long-run-name-fr…" in text
    assert "more columns:" in lines[-1] and "test/loss" in lines[-1]


# --- figures ------------------------------------------------------------------------------------------------------
def test_density_integrates_to_one_per_row():
    edges = np.array([0.0, 0.5, 1.5, 3.0])
    dens = plots.density(edges, np.array([[1, 2, 3], [0, 0, 0]]))
    assert np.sum(dens[0] * np.diff(edges)) == pytest.approx(1.0)
    assert np.all(dens[1] == 0)


def _components(stds, dominant):
    return pd.DataFrame({"component": np.arange(len(stds)), "std": stds, "dominant": dominant})


def test_dominant_histograms_match_components_by_width_rank():
    edges = np.linspace(-3, 3, 7)
    rng = np.random.default_rng(0)
    counts = [rng.integers(0, 50, (4, 6)), rng.integers(0, 50, (3, 6))]
    comps = [_components([0.5, 2.0, 1.0, 3.0], [True, True, False, False]),  # widest dominant: z1, then z0
             _components([1.0, 0.2, 4.0], [False, True, True])]  # widest dominant: z2, then z1
    assert list(plots.dominant_order(comps[0])) == [1, 0]
    fig = plots.dominant_histograms([edges, edges], counts, comps, ["A", "B"])
    first = fig.axes[0]
    labels = [p.get_label() for p in first.patches]
    assert labels == ["A: z1", "B: z2"]
    np.testing.assert_allclose(first.patches[0].get_data().values, plots.density(edges, counts[0][1]))
    assert first.patches[0].get_linestyle() != first.patches[1].get_linestyle()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2


def test_hit_rate_curves_colour_per_b_style_per_run():
    def hits(scale):
        return pd.DataFrame({"b": [1.0, 1.0, 2.0, 2.0], "k": [1.5, 3.0, 1.5, 3.0],
                             "fraction": np.array([0.001, 0.01, 0.0, 0.002]) * scale})

    fig = plots.hit_rate_curves([hits(1), hits(2)], ["A", "B"])
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"A, b=1", "A, b=2", "B, b=1", "B, b=2"}
    assert to_hex(lines["A, b=1"].get_color()) == to_hex(lines["B, b=1"].get_color())
    assert to_hex(lines["A, b=1"].get_color()) != to_hex(lines["A, b=2"].get_color())
    assert lines["A, b=1"].get_linestyle() != lines["B, b=1"].get_linestyle()
    assert ax.get_yscale() == "log"
    assert np.isnan(lines["A, b=2"].get_ydata()[0])  # a zero fraction is left out on the log axis
    np.testing.assert_allclose(lines["B, b=1"].get_ydata(), [0.002, 0.02])


def test_oip_pages_match_maps_across_runs_mark_dead_and_missing_and_split_by_32():
    pats = [np.random.default_rng(0).random((3, 8, 8)), np.random.default_rng(1).random((2, 8, 8))]
    ((name, fig),) = plots.oip_pages(pats, ["A", "B"], dead=[np.array([False, True, False]), np.array([False, False])],
                                     maps=[np.array([0, 1, 2]), np.array([0, 7])])
    assert name == "maps0-7"
    axes = np.array(fig.axes).reshape(2, 4)  # maps 0, 1, 2, 7 in one block row; run A above run B
    assert [ax.get_title() for ax in axes[0]] == ["map 0", "map 1", "map 2", "map 7"]
    assert [len(ax.images) for ax in axes[0]] == [1, 0, 1, 0] and [len(ax.images) for ax in axes[1]] == [1, 0, 0, 1]
    assert axes[0, 1].texts[0].get_text() == "dead" and axes[1, 1].texts[0].get_text() == "—"
    assert [axes[0, 0].get_ylabel(), axes[1, 0].get_ylabel()] == ["A", "B"]
    many = [np.zeros((128, 28, 28))] * 2
    pages = plots.oip_pages(many, ["A", "B"])
    assert [n for n, _ in pages] == ["maps0-31", "maps32-63", "maps64-95", "maps96-127"]
    width, height = pages[0][1].get_size_inches() * 110  # the dpi figures are saved with
    assert max(width, height) <= 2000


def test_loss_curves_one_colour_per_run_solid_val_dashed_train():
    hist = {"train/loss": ([0, 1], [1.0, 0.5]), "val/loss": ([0, 1], [1.1, 0.7]), "val/acc": ([0, 1], [0.5, 0.8])}
    fig = plots.loss_curves([hist, {"val/loss": ([0, 1, 2], [2.0, 1.0, 0.5])}], ["A", "B"])
    loss, acc = fig.axes
    lines = {line.get_label(): line for line in loss.get_lines()}
    assert set(lines) == {"A val", "A train", "B val"}
    assert lines["A val"].get_linestyle() == "-" and lines["A train"].get_linestyle() == "--"
    assert to_hex(lines["A val"].get_color()) != to_hex(lines["B val"].get_color())
    assert [line.get_label() for line in acc.get_lines()] == ["A val"]


# --- compare: every bad input stops before anything is created ------------------------------------------------------
class _Run:
    def __init__(self, run_id, kind):
        self.info = type("Info", (), {"run_id": run_id, "lifecycle_stage": "active"})()
        self.data = type("Data", (), {"tags": {"kind": kind} if kind else {}, "params": {}, "metrics": {}})()


class FakeClient:
    """Answers get_run from a dict; any write is recorded (and must not happen)."""

    def __init__(self, runs_by_id):
        self.runs, self.writes = runs_by_id, []

    def get_run(self, run_id):
        if run_id not in self.runs:
            raise mlflow.exceptions.MlflowException(f"Run '{run_id}' not found")
        return self.runs[run_id]

    def __getattr__(self, name):  # create_run, create_experiment, log_artifact, ...
        return lambda *a, **k: self.writes.append(name)


@pytest.mark.parametrize("ids, message", [
    (["a1"], "at least 2 different run ids; got 1"),
    (["a1", "a1"], "at least 2 different run ids; got 1"),
    (["a1", "nope"], "run 'nope' does not exist in sqlite:///x.db"),
    (["a1", "c1"], r"cannot compare runs of different kinds \(a1=autoencoder, c1=classifier\)"),
    (["a1", "x1"], "run x1 is a comparison run; this needs an autoencoder or a classifier run"),
    (["a1", "n1"], "run n1 is a non-latentdream run"),
])
def test_compare_rejects_bad_input_before_writing(ids, message):
    client = FakeClient({"a1": _Run("a1", "autoencoder"), "a2": _Run("a2", "autoencoder"),
                         "c1": _Run("c1", "classifier"), "x1": _Run("x1", "comparison"), "n1": _Run("n1", None)})
    with pytest.raises(InputError, match=message) as err:
        runs.build_comparison(client, "sqlite:///x.db", ids)
    assert "\n" not in str(err.value)
    assert client.writes == []
