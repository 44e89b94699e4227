"""The whole loop against a real `reef serve` subprocess, driven over HTTP."""

from __future__ import annotations

import httpx
import pytest
from sklearn.datasets import load_digits

from conftest import wait_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(demo):
    server, info = demo
    with server.client(info["token"]) as c:
        yield c


def test_demo_run_succeeded_with_good_accuracy(demo, client):
    _, info = demo
    assert info["accuracy"] >= 0.9
    state = client.get(f"/api/projects/demo/runs/{info['run_id']}").json()
    assert state["run"]["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in state["steps"]] == [
        ("split", "succeeded"),
        ("train", "succeeded"),
        ("evaluate", "succeeded"),
    ]
    assert state["metrics"]["accuracy"] >= 0.9 and state["metrics"]["macro_f1"] >= 0.9


def test_each_step_records_the_commit_it_ran(demo, client):
    _, info = demo
    steps = client.get(f"/api/projects/demo/runs/{info['run_id']}").json()["steps"]
    for step in steps:
        module = step["module"].split("/")[1]
        head = client.get(f"/api/projects/library/modules/{module}").json()["commit"]
        assert step["commit_sha"] == head and len(head) == 40


def test_metric_history_has_step_numbers(demo, client):
    _, info = demo
    history = client.get(f"/api/projects/demo/runs/{info['run_id']}/metrics").json()
    losses = history["loss"]
    assert [step for step, _ in losses] == list(range(1, 31))
    assert losses[-1][1] < losses[0][1]


def test_logs_and_artifacts(demo, client):
    _, info = demo
    logs = client.get(f"/api/projects/demo/runs/{info['run_id']}/logs").json()["logs"]
    assert set(logs) == {"split", "train", "evaluate"}
    # the sandbox keeps /dev/shm out of reach; joblib is told so and does not complain
    assert not any("serial mode" in text for text in logs.values()), logs
    artifacts = client.get(f"/api/projects/demo/runs/{info['run_id']}").json()["artifacts"]
    matrix = next(a for a in artifacts if a["name"] == "confusion_matrix.json")
    body = client.get(f"/api/projects/demo/runs/{info['run_id']}/artifacts/{matrix['id']}")
    assert body.status_code == 200
    assert sum(map(sum, body.json()["matrix"])) == 450


def test_model_version_has_lineage_and_parity(demo, client):
    _, info = demo
    model = client.get("/api/projects/demo/models/digits").json()
    v1 = next(v for v in model["versions"] if v["run_id"] == info["run_id"])
    assert v1["parity_max_diff"] < 1e-4
    assert v1["lineage"]["datasets"] == ["digits@1"]
    assert [m["step"] for m in v1["lineage"]["modules"]] == ["split", "train", "evaluate"]
    assert v1["metrics"]["accuracy"] >= 0.9
    assert len(v1["schema"]["inputs"]["features"]) == 64


def test_predict_lists_and_named_features(demo, client):
    digits = load_digits()
    rows = digits.data[:20].tolist()
    answer = client.post("/api/projects/demo/models/digits/predict", json={"rows": rows}).json()
    labels = [int(p["label"]) for p in answer["predictions"]]
    assert sum(a == b for a, b in zip(labels, digits.target[:20], strict=True)) >= 18
    features = client.get("/api/projects/demo/models/digits").json()["versions"][0]["schema"][
        "inputs"
    ]["features"]
    named = [dict(zip(features, row, strict=True)) for row in rows[:2]]
    by_name = client.post("/api/projects/demo/models/digits/predict", json={"rows": named})
    assert [p["label"] for p in by_name.json()["predictions"]] == [
        p["label"] for p in answer["predictions"][:2]
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"rows": [[1.0, 2.0, 3.0]]}, "64 features"),
        ({"rows": [["a"] * 64]}, "number"),
        ({"rows": []}, "row"),
        ({"rows": "nope"}, "Expected `array`"),
        ({"no_rows": 1}, "rows"),
        ({"rows": [{"px_0_0": 1.0}]}, "missing"),
    ],
)
def test_predict_bad_input_is_a_clear_400(demo, client, body, fragment):
    resp = client.post("/api/projects/demo/models/digits/predict", json=body)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_predict_without_token_is_401(demo):
    server, _ = demo
    resp = httpx.post(
        f"{server.url}/api/projects/demo/models/digits/predict", json={"rows": [[0.0] * 64]}
    )
    assert resp.status_code == 401


def test_rerun_reproduces_metrics_exactly(demo, client):
    _, info = demo
    first = client.get(f"/api/projects/demo/runs/{info['run_id']}").json()
    again = client.post(f"/api/projects/demo/runs/{info['run_id']}/rerun").json()["id"]
    second = wait_run(client, "demo", again)
    assert second["run"]["status"] == "succeeded", second["run"]["error"]
    assert second["run"]["rerun_of"] == info["run_id"]
    for key in ("accuracy", "macro_f1", "loss"):
        assert second["metrics"][key] == first["metrics"][key]
    assert [s["commit_sha"] for s in second["steps"]] == [s["commit_sha"] for s in first["steps"]]
    assert all(s["cached_from"] is None for s in second["steps"])  # really ran again
    diff = client.get(f"/api/projects/demo/runs/{again}/rerun-diff").json()
    assert diff == second["rerun"] and diff["original"] == info["run_id"]
    compared = {(m["step"], m["key"]) for m in diff["metrics"]}
    assert {("train", "loss"), ("evaluate", "accuracy"), ("split", "train_rows")} <= compared
    assert diff["metrics_identical"] and all(m["difference"] == 0 for m in diff["metrics"])
    assert diff["record_identical"], diff["record"]
    page = client.get(f"/projects/demo/runs/{again}").text
    assert "Metrics identical" in page
    # the same model file again: the re-run links to the first run's version, makes no new one
    assert first["models"] == [{"model": "digits", "version": 1, "unchanged": False}]
    assert second["models"] == [{"model": "digits", "version": 1, "unchanged": True}]
    assert "no new version was made" in page
    log = client.get(f"/api/projects/demo/runs/{again}/logs", params={"step": "train"}).json()
    assert "identical to digits v1: no new version" in log["text"]
    not_a_rerun = client.get(f"/api/projects/demo/runs/{info['run_id']}/rerun-diff")
    assert not_a_rerun.status_code == 404 and "not a re-run" in not_a_rerun.json()["detail"]
