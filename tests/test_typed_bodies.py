"""Typed request bodies (issue 18, item 1): a body of the wrong shape is a 400 whose message
names the field, through Litestar's validation and through the handlers that read their body
themselves (pipelines as JSON or YAML, predict, dataset changes); and nothing is stored."""

from __future__ import annotations

import pytest

from conftest import api_token

CSV = b"city,price\nOslo,3\nLima,5\n"


@pytest.fixture
def api(app_client):
    app_client.headers.update(api_token(app_client))
    assert app_client.post("/api/projects", json={"name": "lab"}).status_code == 201
    files = {"file": ("homes.csv", CSV, "text/csv")}
    assert app_client.post("/api/projects/lab/datasets", files=files).status_code == 201
    return app_client


def refused(resp, *words: str) -> str:
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/projects", {"name": 3}, "name"),
        ("/api/projects", {"name": "x", "colour": "red"}, "colour"),
        ("/api/projects/lab/datasets/homes/query", {"sql": "SELECT 1", "limit": 0}, "limit"),
        ("/api/projects/lab/runs", {"params": [1, 2]}, "params"),
        ("/api/projects/lab/pipelines/p/sweeps", {"step": "s"}, "metric"),
        ("/api/projects/lab/models/m/traffic", {"mode": "sideways"}, "mode"),
    ],
)
def test_a_bad_body_names_the_field(api, path, body, field):
    refused(api.post(path, json=body), field)


def test_a_nested_field_is_named(api):
    run = api.post("/api/projects/lab/runs", json={"name": "script"}).json()["id"]
    bad = {"columns": {"key": ["loss"], "value": ["high"]}}
    refused(api.post(f"/api/projects/lab/runs/{run}/metrics", json=bad), "columns.value")
    good = {"columns": {"key": ["loss"], "value": [0.5]}}
    assert api.post(f"/api/projects/lab/runs/{run}/metrics", json=good).json() == {"stored": 1}
    refused(api.post(f"/api/projects/lab/runs/{run}/finish", json={"status": "maybe"}), "status")


def test_a_pipeline_is_checked_as_json_and_as_yaml(api):
    refused(api.post("/api/projects/lab/pipelines", json={"name": "p", "steps": "x"}), "steps")
    yaml_body = b"name: p\nsteps: 3\n"
    headers = {"Content-Type": "application/yaml"}
    refused(api.post("/api/projects/lab/pipelines", content=yaml_body, headers=headers), "steps")
    refused(api.post("/api/projects/lab/pipelines", content=b"{", headers={}), "JSON")
    assert api.get("/api/projects/lab/pipelines").json() == []  # nothing was saved


def test_a_dataset_change_is_checked_before_anything_is_written(api):
    url = "/api/projects/lab/datasets/homes/versions"
    refused(api.post(url, json={"op": "paint"}), "paint")
    refused(api.post(url, json={"op": "append", "rows": []}), "rows")
    refused(api.post(url, json={"op": "drop_column"}), "column")
    assert len(api.get(url).json()) == 1  # still only the upload's version
    added = api.post(url, json={"op": "append", "rows": [{"city": "Rome", "price": 4}]})
    assert added.status_code == 201, added.text
    assert len(api.get(url).json()) == 2


def test_predict_names_what_is_wrong(api):
    url = "/api/projects/lab/models/m/predict"
    refused(api.post(url, json={"rows": "all of them"}), "rows")
    refused(api.post(url, json={"rows": [[1]], "extra": 1}), "extra")
