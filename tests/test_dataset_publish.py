"""A pipeline step publishes a table output as a new version of a project dataset, and the
version records the run step that produced it."""

from __future__ import annotations

import httpx
import pytest
import test_pipelines_api

from conftest import login, wait_run

CSV = test_pipelines_api.CSV
api = test_pipelines_api.api  # the fixture: project p with dataset d


def split(publish) -> dict:
    return {"name": "split", "module": "split", "inputs": {"data": "dataset:d"}, "publish": publish}


@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ([split({"nope": "d-train"})], "publish: the module has no output 'nope'"),
        ([split({"train": "Bad Name"})], "'Bad Name' (for output 'train') is not a valid"),
        ([split(["train"])], "publish must be an object"),
        ([split({"train": "x", "test": "x"})], "each output needs a dataset of its own"),
        (
            [
                split({}),
                {
                    "name": "train",
                    "module": "mlp-classifier",
                    "inputs": {"train": "split.train"},
                    "publish": {"model": "m"},
                },
            ],
            "output 'model' is a model, not a table",
        ),
    ],
)
def test_the_planner_refuses_bad_publish(api, steps, fragment):
    client, headers = api
    resp = client.post("/api/projects/p/pipelines", json={"name": "x", "steps": steps},
                       headers=headers)  # fmt: skip
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["detail"]
    assert client.get("/api/projects/p/pipelines", headers=headers).json() == []


def test_a_published_output_is_a_version_produced_by_its_step(server):
    with server.client() as client:
        client.post("/api/projects", json={"name": "p"}).raise_for_status()
        client.post(
            "/api/projects/p/datasets", files={"file": ("d.csv", CSV)}, data={"name": "d"}
        ).raise_for_status()
        spec = {"name": "prep", "steps": [split({"train": "d-train"})]}
        client.post("/api/projects/p/pipelines", json=spec).raise_for_status()
        run_id = client.post("/api/projects/p/pipelines/prep/runs", json={}).json()["id"]
        assert wait_run(client, "p", run_id)["run"]["status"] == "succeeded"
        version = client.get("/api/projects/p/datasets/d-train/versions/1").json()
        assert version["produced_by"] == {"run": run_id, "step": "split"}
        assert version["message"] == f"output train of run {run_id} step split"
        assert version["author"] == "admin" and 0 < version["num_rows"] < 40
        listed = client.get("/api/projects/p/datasets/d-train").json()["versions"]
        assert listed[0]["produced_by"] == {"run": run_id, "step": "split"}
        assert client.get("/api/projects/p/datasets/d/versions/1").json()["produced_by"] is None
        run_id2 = client.post("/api/projects/p/pipelines/prep/runs", json={}).json()["id"]
        assert wait_run(client, "p", run_id2)["run"]["status"] == "succeeded"
        listed = client.get("/api/projects/p/datasets/d-train").json()["versions"]
        # the second run publishes the same rows: no new version (and no new record of it)
        assert [v["produced_by"]["run"] for v in listed] == [run_id]
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        login(browser)
        page = browser.get("/projects/p/datasets/d-train").text
    link = f'<a href="/projects/p/runs/{run_id}">run {run_id}</a>'
    assert f"produced by {link}, step split" in page
