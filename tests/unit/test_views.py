"""The experiment's shared view for the MLflow UI (experiments.mlflow_ui.views): section order, card fields, the tag's
envelope and size limit, publishing (idempotent, retried) and the links."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from experiments.mlflow_ui import views

KEYS = ["val/loss", "train/acc", "train/loss", "test/loss", "latent/radius_mean", "oip/conv3/dead_maps", "epoch",
        "dream/seed/objective_gain", "system/cpu_utilization_percentage", "zeta/x", "train/lr", "val/acc"]


def _sections(state):
    return [s["name"] for s in state["compareRunSections"]]


def test_sections_put_curves_first_then_analyses_then_the_rest():
    state = views.view_state({k: True for k in KEYS}, {"oip/conv3_random": 0, "latent/histograms": 3})
    assert _sections(state) == ["train", "val", "test", "latent images", "latent", "oip", "oip/conv3", "dream/seed",
                                "zeta", "Model metrics", "System metrics"]
    assert state["isAccordionReordered"] is True
    by_id = {s["uuid"]: s["name"] for s in state["compareRunSections"]}
    cards = [(by_id[c["metricSectionId"]], c.get("metricKey") or c["imageKeys"][0]) for c in state["compareRunCharts"]]
    assert cards[:3] == [("train", "train/loss"), ("train", "train/acc"), ("train", "train/lr")]
    assert ("latent images", "latent/histograms") in cards and ("oip", "oip/conv3_random") in cards
    assert [s for s in _sections(state)] == list(dict.fromkeys(name for name, _ in cards))  # cards follow sections


def test_the_order_does_not_depend_on_the_order_keys_arrive_in():
    keys = KEYS[:]
    random.Random(1).shuffle(keys)
    assert views.view_state(dict.fromkeys(keys, True), {}) == views.view_state(dict.fromkeys(KEYS, True), {})


def test_line_cards_carry_smoothing_and_x_axis_bar_cards_for_single_steps():
    state = views.view_state({"val/loss": True, "test/acc": False, "system/cpu": True}, {})
    cards = {c["metricKey"]: c for c in state["compareRunCharts"]}
    line = cards["val/loss"]
    assert line["type"] == "LINE" and line["lineSmoothness"] == 0 and line["xAxisKey"] == "step"
    assert line["useGlobalLineSmoothing"] and line["useGlobalXaxisKey"] and line["deleted"] is False
    assert cards["test/acc"]["type"] == "BAR" and "lineSmoothness" not in cards["test/acc"]
    assert cards["system/cpu"]["xAxisKey"] == "time" and cards["system/cpu"]["useGlobalXaxisKey"] is False


def test_image_cards_hide_run_params_in_one_tall_column():
    state = views.view_state({"val/loss": True}, {"oip/conv3_random": 5})
    card = next(c for c in state["compareRunCharts"] if c["type"] == "IMAGE")
    assert card["imageKeys"] == ["oip/conv3_random"] and card["showRunParams"] is False and card["step"] == 5
    section = next(s for s in state["compareRunSections"] if s["uuid"] == card["metricSectionId"])
    assert section["name"] == "oip" and section["columns"] == 1 and section["cardHeight"] > 360


def test_the_tag_is_the_saved_view_envelope_and_fits_the_limit():
    small = views.encode_view(views.view_state({"val/loss": True}, {}), 1, 2)
    envelope = json.loads(small)
    assert envelope["name"] == views.VIEW_NAME and envelope["createdAt"] == 1 and envelope["updatedAt"] == 2
    assert json.loads(envelope["state"])["isAccordionReordered"] is True  # plain JSON while it fits
    many = views.view_state({f"latent/hit_b{b}_k{k}": True for b in range(60) for k in range(10)}, {})
    value = views.encode_view(many, 1, 2)
    assert len(value) <= views.MAX_TAG_LENGTH and json.loads(value)["state"].startswith("deflate;")
    assert views.decode_view(value)["state"] == json.loads(json.dumps(many))
    huge = views.view_state({f"latent/{i}_{'x' * 40}": True for i in range(4000)}, {})
    value = views.encode_view(huge, 1, 2)  # too big even deflated: cards are left out from the end
    state = views.decode_view(value)["state"]
    assert len(value) <= views.MAX_TAG_LENGTH and 0 < len(state["compareRunCharts"]) < 4000
    assert state["compareRunCharts"][0] == huge["compareRunCharts"][0] and state["compareRunSections"]


def test_image_steps_parse_mlflow_file_names_and_the_start_step():
    paths = ["images/oip~conv3_random+step+0+timestamp+1+aa.png",
             "images/oip~conv3_random+step+0+timestamp+1+aa+compressed.webp",
             "images/oip~conv3_random+step+3+timestamp+2+bb.png",
             "images/latent#histograms%step%2%timestamp%1%cc.png", "images/notes.txt"]
    assert views.image_steps(paths) == {"oip/conv3_random": {0, 3}, "latent/histograms": {2}}
    assert views.start_step([{0, 1, 2}, {0, 1}]) == 1  # the last step both runs have
    assert views.start_step([{7}, {3}]) == 7  # none in common: the newest run's last


class FakeClient:
    """search_runs / list_artifacts / get_experiment / get_metric_history / set_experiment_tag over two runs in
    memory."""

    def __init__(self, fail_first: int = 0):
        self.tags, self.writes, self.fail_first = {}, 0, fail_first
        metric = lambda key, step: SimpleNamespace(key=key, step=step)  # noqa: E731
        self.runs = [
            SimpleNamespace(info=SimpleNamespace(run_id="b"), data=SimpleNamespace(
                _metric_objs=[metric("val/loss", 1), metric("test/loss", 0)], tags={"mlflow.loggedImages": "True"})),
            SimpleNamespace(info=SimpleNamespace(run_id="a"), data=SimpleNamespace(
                _metric_objs=[metric("val/loss", 0), metric("train/loss", 3)], tags={})),
        ]

    def search_runs(self, experiment_ids, max_results, order_by):
        return self.runs

    def list_artifacts(self, run_id, path):
        assert run_id == "b" and path == "images"
        return [SimpleNamespace(path=f"images/oip~conv1_random+step+{s}+timestamp+1+u.png") for s in (0, 1)]

    def get_experiment(self, experiment_id):
        return SimpleNamespace(tags=dict(self.tags))

    def get_metric_history(self, run_id, key):
        return [SimpleNamespace(value=0.5 if run_id == "a" else 0.25, step=0)]

    def set_experiment_tag(self, experiment_id, key, value):
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        self.tags[key] = value
        self.writes += 1


def test_publish_view_reads_the_keys_and_is_idempotent():
    client = FakeClient()
    assert views.publish_view(client, "1") == views.VIEW_KEY
    envelope = views.decode_view(client.tags[views.VIEW_TAG])
    cards = {c.get("metricKey") or c["imageKeys"][0]: c for c in envelope["state"]["compareRunCharts"]}
    assert cards["val/loss"]["type"] == "LINE" and cards["test/loss"]["type"] == "BAR"
    assert cards["oip/conv1_random"]["step"] == 1
    # val/loss's axis fits both runs' histories (0.25 and 0.5, 5 % margins)
    assert cards["val/loss"]["range"] == {"yMin": 0.25 - 0.0125, "yMax": 0.5 + 0.0125}
    views.publish_view(client, "1")
    assert client.writes == 1  # nothing changed: nothing written
    client.runs[1].data._metric_objs.append(SimpleNamespace(key="val/acc", step=2))
    views.publish_view(client, "1")
    again = views.decode_view(client.tags[views.VIEW_TAG])
    assert client.writes == 2 and again["createdAt"] == envelope["createdAt"]
    assert "val/acc" in {c.get("metricKey") for c in again["state"]["compareRunCharts"]}


def test_publish_view_retries_a_locked_store_and_try_publish_only_warns(caplog):
    client = FakeClient(fail_first=2)
    views.publish_view(client, "1")
    assert client.writes == 1
    broken = FakeClient()
    broken.set_experiment_tag = lambda *a: (_ for _ in ()).throw(RuntimeError("experiment is deleted"))
    with pytest.raises(RuntimeError):
        views.publish_view(broken, "1")
    assert views.try_publish_view(broken, "1") is None and "experiment is deleted" in caplog.text


def test_links_open_the_model_training_ui():
    base = "http://127.0.0.1:5000/"
    assert views.experiments_url(base) == "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    assert views.experiment_url(base, "3") == ("http://127.0.0.1:5000/#/experiments/3/runs?workflowType="
                                               "machine_learning&compareRunsMode=CHART&viewStateShareKey=latentdream")
    assert views.experiment_url(base, "3", view=False).endswith("&compareRunsMode=CHART")
    assert views.run_url(base, "3", "abc") == ("http://127.0.0.1:5000/#/experiments/3/runs/abc/model-metrics"
                                               "?workflowType=machine_learning")
    assert "/runs/abc/artifacts/compare/x.png?workflowType" in views.run_url(base, "3", "abc", "artifacts/compare/x.png")


def test_training_curves_get_fitted_axes_and_the_learning_rate_a_log_axis():
    state = views.view_state({"train/lr": True, "val/loss": True, "oip/conv1/dead_maps": True}, {},
                             {"train/lr": [0.002, 0.002], "val/loss": [0.5, 0.1, 0.04]})
    cards = {c["metricKey"]: c for c in state["compareRunCharts"]}
    lr, loss = cards["train/lr"], cards["val/loss"]
    assert lr["scaleType"] == "log" and loss["scaleType"] == "linear"
    # a constant lr of 0.002: log10 = -2.699, ±0.05 decades (the UI's own ±1 would read 0.002 as 0)
    assert abs(lr["range"]["yMin"] + 2.749) < 1e-3 and abs(lr["range"]["yMax"] + 2.649) < 1e-3, lr["range"]
    assert abs(loss["range"]["yMin"] - (0.04 - 0.023)) < 1e-9 and abs(loss["range"]["yMax"] - (0.5 + 0.023)) < 1e-9
    assert cards["oip/conv1/dead_maps"]["range"] == {}  # not fitted: the UI's autorange


def test_fitted_range_ignores_what_it_cannot_draw():
    assert views.fitted_range([]) == {} and views.fitted_range([float("nan")]) == {}
    assert views.fitted_range([0.0, -1.0], log=True) == {}  # nothing positive on a log axis
    assert views.fitted_range([2.0, 2.0]) == {"yMin": 1.8, "yMax": 2.2}
