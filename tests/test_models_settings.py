"""Editing a model's gates and monitor thresholds: the page's HTMX forms (saved values come
back, errors inline with nothing saved) and the validation they share with the JSON API."""

from __future__ import annotations

import html

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
        parity="yes",
        latency_max_ms="250",
        latency_batch="4",
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
        ({"latency_max_ms": "-3"}, "above 0"),
        ({"latency_max_ms": "5", "latency_batch": "0"}, "'batch'"),
        ({"better_dataset": "table", "better_metric": "f1"}, "'metric' must be one of"),
    ],
)
def test_gates_form_errors_show_inline_and_save_nothing(app_client, form, fields, fragment):
    resp = form("gates", aliases="production", **fields)
    text = html.unescape(resp.text)
    assert resp.status_code == 400 and fragment in text, text
    assert 'role="alert"' in text and 'id="gates"' in text
    typed = [v for k, v in fields.items() if k != "better_metric"]  # a select offers no f1
    assert all(f'value="{v}"' in text for v in typed)  # what was typed is kept
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
        ({"ks_threshold": True}, "number"),
        ({"nope": 1}, "send some of"),
        ({}, "send some of"),
    ):
        resp = app_client.patch(f"{API}/monitor", json=body)
        assert resp.status_code == 400 and fragment in resp.json()["detail"]
    restored = app_client.patch(f"{API}/monitor", json={"psi_threshold": None}).json()
    assert restored["psi_threshold"] == 0.2


def test_gates_api_refuses_non_numbers(app_client, lab):  # noqa: F811
    bad = {"checks": [{"type": "metric", "metric": "accuracy", "min": "0.9"}]}
    resp = app_client.post(f"{API}/gates", json=bad)
    assert resp.status_code == 400 and "'min' must be a number" in resp.json()["detail"]
