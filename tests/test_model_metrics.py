"""Metrics belong to steps, end to end: a pipeline that trains two models on one split, each
with its own evaluator, registers two versions that each record their own evaluator's
accuracy (not the run's latest); a gate refuses the weaker one; pages and the runs table name
the shared keys `step/key`. And a sweep ranks on the validation split, reporting test apart."""

from __future__ import annotations

import pytest

from conftest import modules_dir, start_server, wait_run

pytestmark = pytest.mark.slow


def wine_csv() -> bytes:
    from sklearn.datasets import load_wine

    data = load_wine()
    names = [f"f{i}" for i in range(data.data.shape[1])]
    lines = [",".join([*names, "label"])]
    lines += [
        ",".join([*map(str, row), str(y)]) for row, y in zip(data.data, data.target, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


TWO_MODELS = [
    {"name": "split", "module": "split", "params": {"test_size": 0.3},
     "inputs": {"data": "dataset:wine"}},
    {"name": "mlp", "module": "mlp-classifier", "params": {"epochs": 40},
     "inputs": {"train": "split.train"}, "register": "wine-mlp"},
    {"name": "boost", "module": "gradient-boosting", "params": {"n_estimators": 1, "max_depth": 1},
     "inputs": {"train": "split.train"}, "register": "wine-boost"},
    {"name": "eval-mlp", "module": "evaluate",
     "inputs": {"model": "mlp.model", "test": "split.test"}},
    {"name": "eval-boost", "module": "evaluate",
     "inputs": {"model": "boost.model", "test": "split.test"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A server with project lab, dataset wine, and one succeeded run of TWO_MODELS."""
    root = tmp_path_factory.mktemp("model-metrics")
    srv = start_server(root / "data", modules_dir(root))
    client = srv.client()
    client.post("/api/projects", json={"name": "lab"}).raise_for_status()
    upload = client.post(
        "/api/projects/lab/datasets",
        files={"file": ("wine.csv", wine_csv())},
        data={"name": "wine"},
    )
    upload.raise_for_status()
    client.post("/api/projects/lab/pipelines", json={"name": "two", "steps": TWO_MODELS})
    run_id = client.post("/api/projects/lab/pipelines/two/runs", json={}).json()["id"]
    state = wait_run(client, "lab", run_id, timeout=300)
    assert state["run"]["status"] == "succeeded", srv.output()[-3000:]
    yield client, run_id
    client.close()
    srv.stop()


def version(client, model: str) -> dict:
    return client.get(f"/api/projects/lab/models/{model}/versions/1").json()


def test_each_version_records_its_own_evaluators_accuracy(lab):
    client, run_id = lab
    run = client.get(f"/api/projects/lab/runs/{run_id}").json()
    metrics = run["metrics"]
    mlp, boost = version(client, "wine-mlp"), version(client, "wine-boost")
    assert mlp["metrics"]["accuracy"] == metrics["eval-mlp/accuracy"]
    assert boost["metrics"]["accuracy"] == metrics["eval-boost/accuracy"]
    assert boost["metrics"]["accuracy"] < mlp["metrics"]["accuracy"]  # one stump: weaker
    assert mlp["metrics"]["train_accuracy"] == metrics["mlp/train_accuracy"]
    assert mlp["metrics_from"] == ["mlp", "eval-mlp"]
    assert boost["metrics_from"] == ["boost", "eval-boost"]
    assert "its evaluators: mlp, eval-mlp" in client.get("/projects/lab/models/wine-mlp").text
    # keys one step logs stay bare; keys several steps log are named step/key
    assert "test_rows" in metrics and "accuracy" not in metrics and "loss" not in metrics
    history = client.get(f"/api/projects/lab/runs/{run_id}/metrics").json()
    assert {"mlp/loss", "boost/loss", "test_rows"} <= set(history)
    assert len(history["mlp/loss"]) == 40  # one series per step, not interleaved


def test_a_gate_refuses_the_weaker_model(lab):
    client, _ = lab
    strong = version(client, "wine-mlp")["metrics"]["accuracy"]
    weak = version(client, "wine-boost")["metrics"]["accuracy"]
    gate = {"checks": [{"type": "metric", "metric": "accuracy", "min": (strong + weak) / 2}]}
    assert client.post("/api/projects/lab/gates", json=gate).status_code == 200
    refused = client.post("/api/projects/lab/models/wine-boost/versions/1/promote", json={})
    assert refused.status_code == 409, refused.text
    check = refused.json()["checks"][0]
    assert check["ok"] is False and check["value"] == weak
    promoted = client.post("/api/projects/lab/models/wine-mlp/versions/1/promote", json={})
    assert promoted.status_code == 200, promoted.text


def test_the_runs_table_filters_sorts_and_shows_step_keys(lab):
    client, run_id = lab
    columns = "metric:eval-boost/accuracy,metric:test_rows,metric:accuracy"
    page = client.get(
        "/api/projects/lab/runs",
        params={"metric": "eval-mlp/accuracy>=0.5", "columns": columns,
                "sort": "-metric:eval-boost/accuracy"},
    )  # fmt: skip
    assert page.status_code == 200, page.text
    [row] = page.json()
    weak = version(client, "wine-boost")["metrics"]["accuracy"]
    assert row["id"] == run_id
    assert row["values"]["metric:eval-boost/accuracy"] == weak
    assert row["values"]["metric:test_rows"] > 0
    assert row["values"]["metric:accuracy"] is None  # two steps log it: name one
    none = client.get("/api/projects/lab/runs", params={"metric": "accuracy>=0"}).json()
    assert none == []
    html = client.get(f"/projects/lab/runs/{run_id}").text
    assert "eval-mlp/accuracy" in html


def test_the_model_and_evaluator_templates_train_evaluate_and_register(lab):
    """`reef module new --kind model` (and the UI's "New module") gives a model template, not
    the data processor's; with the evaluator template it runs and registers as it is."""
    client, _ = lab
    for name, kind in [("my-model", "model"), ("my-eval", "evaluator")]:
        made = client.post("/api/projects/lab/modules", json={"name": name, "kind": kind})
        assert made.status_code == 201, made.text
    manifest = client.get("/api/projects/lab/modules/my-model").json()["manifest"]
    assert manifest["kind"] == "model" and manifest["outputs"] == {"model": "model"}
    steps = [
        TWO_MODELS[0],
        {"name": "train", "module": "my-model", "inputs": {"train": "split.train"},
         "register": "wine-template"},
        {"name": "score", "module": "my-eval",
         "inputs": {"model": "train.model", "test": "split.test"}},
    ]  # fmt: skip
    client.post("/api/projects/lab/pipelines", json={"name": "templates", "steps": steps})
    run_id = client.post("/api/projects/lab/pipelines/templates/runs", json={}).json()["id"]
    state = wait_run(client, "lab", run_id, timeout=300)
    assert state["run"]["status"] == "succeeded", state
    accuracy = version(client, "wine-template")["metrics"]["accuracy"]
    assert accuracy == state["metrics"]["accuracy"] > 0.8


def test_a_sweep_picks_on_validation_and_reports_the_test_score(lab):
    client, _ = lab
    steps = [
        {"name": "split", "module": "split", "params": {"test_size": 0.25, "validation_size": 0.25},
         "inputs": {"data": "dataset:wine"}},
        {"name": "train", "module": "gradient-boosting", "params": {"n_estimators": 3},
         "inputs": {"train": "split.train"}},
        {"name": "eval-val", "module": "evaluate",
         "inputs": {"model": "train.model", "test": "split.validation"}},
        {"name": "eval-test", "module": "evaluate",
         "inputs": {"model": "train.model", "test": "split.test"}},
    ]  # fmt: skip
    client.post("/api/projects/lab/pipelines", json={"name": "tune", "steps": steps})
    sweeps = "/api/projects/lab/pipelines/tune/sweeps"
    body = {"step": "train", "grid": {"max_depth": [1, 3]}, "goal": "max"}
    on_test = client.post(sweeps, json={**body, "metric": "eval-test/accuracy"})
    assert on_test.status_code == 400 and "validation" in on_test.json()["detail"]
    assert client.get("/api/projects/lab/runs", params={"pipeline": "tune"}).json() == []
    sweep = client.post(sweeps, json={**body, "metric": "eval-val/accuracy"}).json()
    for run_id in sweep["runs"]:
        assert wait_run(client, "lab", run_id, timeout=300)["run"]["status"] == "succeeded"
    got = client.get(f"/api/projects/lab/sweeps/{sweep['id']}").json()
    assert got["sweep"]["spec"]["test_metric"] == "eval-test/accuracy"
    for trial in got["trials"]:
        metrics = client.get(f"/api/projects/lab/runs/{trial['id']}").json()["metrics"]
        assert trial["metric"] == metrics["eval-val/accuracy"]
        assert trial["test"] == metrics["eval-test/accuracy"]
        assert abs(metrics["validation_rows"] - metrics["test_rows"]) <= 3
    assert got["best"]["metric"] == max(t["metric"] for t in got["trials"])
    page = client.get(f"/projects/lab/sweeps/{sweep['id']}").text
    assert "eval-test/accuracy (test)" in page and 'id="best-test"' in page
