"""Editing a model's gates and monitor thresholds: the page's HTMX forms (saved values come
back, errors inline with nothing saved) and the validation they share with the JSON API."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest
from test_models import API, lab, promote  # noqa: F401

from conftest import csrf, login

PAGE = "/projects/lab/models/m"


@pytest.fixture
def form(app_client, lab):  # noqa: F811
    """Post a settings form of the model page as a signed-in owner, the way htmx does."""
    login(app_client)
    token = csrf(app_client.get(PAGE).text)

    def post(path: str, **fields: str):
        data = {**fields, "_csrf_token": token}
        return app_client.post(f"{PAGE}/{path}", data=data, headers={"HX-Request": "true"})

    return post


def test_gates_form_saves_a_document_that_gates_promotion(app_client, lab, form):  # noqa: F811
    resp = form(
        "gates",
        aliases="production",
        metric_0="accuracy",
        min_0="0.999",
        parity_0="yes",
        latency_max_ms_0="250",
        latency_batch_0="4",
    )
    assert resp.status_code == 200 and "Gates saved" in resp.text
    assert 'value="0.999"' in resp.text and 'name="metric_1"' in resp.text  # plus a blank row
    gates = app_client.get(API).json()["gates"]
    assert gates == {
        "aliases": ["production"],
        "checks": [
            {"type": "metric", "metric": "accuracy", "min": 0.999},
            {"type": "parity"},
            {"type": "latency", "max_ms": 250, "batch": 4},
        ],
    }
    refused = promote(app_client, 1)
    assert refused.status_code == 409
    failed = [c for c in refused.json()["checks"] if not c["ok"]]
    assert [c["type"] for c in failed] == ["metric"]
    assert form("gates", aliases="production").status_code == 200  # nothing set: cleared
    assert app_client.get(API).json()["gates"] is None
    assert promote(app_client, 1).status_code == 200


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"metric_0": "accuracy", "min_0": "high"}, "metric row 1: min must be a number"),
        ({"metric_0": "accuracy"}, "metric row 1"),
        ({"min_0": "0.5"}, "metric row 1"),
        ({"latency_max_ms_0": "-3"}, "latency row 1: a latency check needs 'max_ms'"),
        ({"latency_max_ms_0": "5", "latency_batch_0": "0"}, "latency row 1: 'batch'"),
        ({"latency_max_ms_1": "5", "latency_batch_1": "2.5"}, "latency row 2: 'batch'"),
        ({"latency_batch_0": "4"}, "latency row 1: a latency check needs 'max_ms'"),
        ({"parity_0": "yes", "parity_max_diff_0": "tiny"}, "parity row 1: max_diff must be"),
        ({"better_alias_0": "staging"}, "better-than row 1: better_than needs 'dataset'"),
        ({"better_dataset_0": "t", "better_metric_0": "f1"}, "'metric' must be one of"),
    ],
)
def test_gates_form_errors_show_inline_and_save_nothing(app_client, form, fields, fragment):
    resp = form("gates", aliases="production", **fields)
    text = html.unescape(resp.text)
    assert resp.status_code == 400 and fragment in text, text
    assert 'role="alert"' in text and 'id="gates"' in text
    selects = ("better_metric", "parity")  # a select offers no f1
    typed = [v for k, v in fields.items() if k.rpartition("_")[0] not in selects]
    assert all(f'value="{v}"' in text for v in typed)  # what was typed is kept
    assert app_client.get(API).json()["gates"] is None


class FormFields(HTMLParser):
    """The fields a browser would send for the page's gates form, as shown."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.inside, self.select, self.pending = False, None, None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = "/gates" in a.get("hx-post", "")
        elif self.inside and tag == "input" and a.get("type") != "hidden":
            self.fields[a["name"]] = a.get("value") or ""
        elif self.inside and tag == "select":
            self.select = a["name"]
        elif (
            self.inside and tag == "option" and ("selected" in a or self.select not in self.fields)
        ):
            self.fields[self.select] = a.get("value", "")
            self.pending = None if "value" in a else self.select  # its text is its value

    def handle_data(self, data: str) -> None:
        if self.pending:
            self.fields[self.pending], self.pending = data, None

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "form"
        self.select = None if tag == "select" else self.select


def shown_fields(app_client) -> dict[str, str]:
    parser = FormFields()
    parser.feed(app_client.get(PAGE).text)
    return parser.fields


def test_gates_form_shows_and_keeps_every_check_set_through_the_api(app_client, form):
    doc = {
        "aliases": ["production", "staging"],
        "checks": [
            {"type": "metric", "metric": "accuracy", "min": 0.5},
            {"type": "metric", "metric": "loss", "max": 2.5},
            {"type": "parity"},
            {"type": "parity", "max_diff": 0.001},
            {"type": "latency", "max_ms": 250, "batch": 4},
            {"type": "latency", "max_ms": 900.5, "batch": 64},
            {"type": "latency", "max_ms": 1000},
            {"type": "better_than", "dataset": "table", "label": "label", "alias": "production"},
            {"type": "better_than", "dataset": "table@1", "metric": "rmse", "min_delta": 0.1},
        ],
    }
    assert app_client.post(f"{API}/gates", json=doc).status_code == 200
    stored = app_client.get(API).json()["gates"]
    fields = shown_fields(app_client)
    assert fields["latency_max_ms_1"] == "900.5" and fields["latency_batch_1"] == "64"
    assert fields["better_metric_1"] == "rmse" and fields["parity_max_diff_1"] == "0.001"
    assert fields["latency_max_ms_3"] == "" and fields["metric_2"] == ""  # a blank row each
    resp = form("gates", **fields)  # saved unchanged
    assert resp.status_code == 200 and "Gates saved" in resp.text, resp.text
    assert app_client.get(API).json()["gates"] == stored
    fields |= {"latency_max_ms_3": "50", "better_dataset_2": "table", "parity_2": "yes"}
    assert form("gates", **fields).status_code == 200  # the blank rows add a check each
    checks = app_client.get(API).json()["gates"]["checks"]
    assert [c["type"] for c in checks].count("latency") == 4
    assert [c["type"] for c in checks].count("better_than") == 3
    assert [c["type"] for c in checks].count("parity") == 3


def test_gates_api_refuses_fields_no_form_could_keep(app_client, lab):  # noqa: F811
    bad = {"checks": [{"type": "latency", "max_ms": 5, "note": "x"}]}
    resp = app_client.post(f"{API}/gates", json=bad)
    assert resp.status_code == 400 and "unknown field `note`" in resp.json()["detail"]
    bad = {"checks": [{"type": "better_than", "dataset": "table", "alias": 3}]}
    resp = app_client.post(f"{API}/gates", json=bad)
    assert resp.status_code == 400 and "checks[0].alias" in resp.json()["detail"]
    assert app_client.get(API).json()["gates"] is None


def test_monitor_form_saves_thresholds_and_refuses_bad_ones(app_client, form):
    resp = form("monitor", ks_threshold="0.3", psi_threshold="0.5", min_accuracy="0.8")
    assert resp.status_code == 200 and "Thresholds saved" in resp.text
    config = app_client.get(API).json()["monitor"]
    assert (config["ks_threshold"], config["psi_threshold"], config["min_accuracy"]) == (
        0.3,
        0.5,
        0.8,
    )
    assert config["min_rows"] == 100  # left empty: the default
    for fields, fragment in (
        ({"ks_threshold": "2"}, "at most 1"),
        ({"min_rows": "2.5"}, "whole number"),
        ({"window_s": "soon"}, "must be a number"),
        ({"min_accuracy": "-1"}, "at least 0"),
    ):
        bad = form("monitor", **fields)
        assert bad.status_code == 400 and fragment in html.unescape(bad.text), bad.text
        assert 'id="monitor-settings"' in bad.text
    assert app_client.get(API).json()["monitor"]["ks_threshold"] == 0.3  # unchanged
    assert form("monitor").status_code == 200  # all empty: every default back
    assert app_client.get(API).json()["monitor"]["min_accuracy"] is None


def test_monitor_api_validates_and_null_restores_the_default(app_client, lab):  # noqa: F811
    assert app_client.patch(f"{API}/monitor", json={"psi_threshold": 0.4}).status_code == 200
    for body, fragment in (
        ({"psi_threshold": -1}, "at least"),
        ({"ks_threshold": True}, "ks_threshold: Expected `float | null`, got `bool`"),
        ({"nope": 1}, "unknown field `nope`"),
        ({}, "send some of"),
    ):
        resp = app_client.patch(f"{API}/monitor", json=body)
        assert resp.status_code == 400 and fragment in resp.json()["detail"]
    restored = app_client.patch(f"{API}/monitor", json={"psi_threshold": None}).json()
    assert restored["psi_threshold"] == 0.2


def test_gates_api_refuses_non_numbers(app_client, lab):  # noqa: F811
    bad = {"checks": [{"type": "metric", "metric": "accuracy", "min": "high"}]}
    resp = app_client.post(f"{API}/gates", json=bad)
    assert resp.status_code == 400 and "checks[0].min" in resp.json()["detail"]


def test_a_batch_job_stopped_after_writing_its_version_is_done_at_the_next_start(lab):  # noqa: F811
    """The model page's batch jobs after a restart: a job that had written and recorded its
    version is done with it; one that had not (or whose version an earlier job wrote) failed."""
    from reef.runtime import batch

    batches, service = lab.model_service.batches, lab.model_service
    model_id = service.model_id("lab", "m")
    request = {"dataset": "table", "version": 1, "output": "scored", "column": "p"}
    request["model_version"] = 1
    wrote = batches.jobs.create(model_id, request, "admin")
    batches.jobs.start(wrote)
    written = batch.run(service, "admin", "lab", "m", request)  # then the server stopped
    batches.resume()
    job = batches.jobs.get(wrote)
    assert job["status"] == "done" and job["error"] is None, job
    assert job["result"] == written and written["version"] == 1
    again = batches.jobs.create(model_id, request, "admin")  # same request, wrote nothing
    batches.jobs.start(again)
    batches.resume()
    assert "interrupted" in batches.jobs.get(again)["error"]
    assert batches.jobs.get(wrote)["result"]["version"] == 1
