"""Unchanged MLflow scripts, autolog and MlflowClient against a real `reef serve`, with the
real mlflow-skinny client; results checked through reef's own API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import Server, patience, start_server

pytest.importorskip("mlflow")
SCRIPTS = Path(__file__).parent / "mlflow_scripts"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("mlflow")
    srv = start_server(root / "data", extra=("--workers", "0"))
    yield srv, srv.token()
    srv.stop()


def run_script(srv: Server, token: str, name: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": srv.url,
        "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patience(300),
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def api(srv: Server, token: str) -> httpx.Client:
    return srv.client(token)


def test_fluent_script_nested_runs_artifacts_search(served, tmp_path: Path) -> None:
    srv, token = served
    out = run_script(srv, token, "fluent.py", tmp_path)
    assert out["found"] == ["baseline", "weaker"]  # filter on metric and param, ordered
    assert out["paged"] == 1 and out["paged_token"]
    assert len(out["history"]) == 50 and out["history"][-1] == [49, 0.02]
    assert out["artifact"] == "hello"
    assert out["listing"] == ["config.json", "notes"]
    assert out["parent"] == out["run_id"]
    with api(srv, token) as c:  # what the script logged, through reef's own API
        project = c.get("/api/projects/churn-study").json()
        assert project["project"]["name"] == "churn-study", project
        run = c.get(f"/api/projects/churn-study/runs/{out['run_id']}").json()
        assert run["run"]["status"] == "succeeded" and run["run"]["name"] == "baseline"
        assert run["metrics"]["acc"] == 0.9
        metrics = c.get(f"/api/projects/churn-study/runs/{out['run_id']}/metrics").json()
        assert len(metrics["loss"]) == 50
        assert run["children"] == [int(out["child_id"])] and run["tags"]["team"] == "risk"
        page = c.get(f"/projects/churn-study/runs/{out['run_id']}").text
        assert "Child runs" in page and f'/runs/{out["child_id"]}"' in page


def test_sklearn_autolog(served, tmp_path: Path) -> None:
    srv, token = served
    out = run_script(srv, token, "autolog.py", tmp_path)
    assert out["params"] >= 15
    assert "training_accuracy_score" in out["metrics"] and len(out["metrics"]) >= 5
    with api(srv, token) as c:
        run = c.get(f"/api/projects/autolog/runs/{out['run_id']}").json()
        assert run["metrics"]["training_accuracy_score"] > 0.9


def test_log_model_register_alias_then_reef_serves_it(served, tmp_path: Path) -> None:
    srv, token = served
    out = run_script(srv, token, "registry.py", tmp_path)
    assert out["version"] == out["alias"] == "1"
    from sklearn.datasets import load_iris

    rows = load_iris().data[:5].tolist()
    with api(srv, token) as c:
        model = c.get("/api/projects/registry/models/iris-lr").json()
        assert model["aliases"] == {"production": 1}
        answer = c.post("/api/projects/registry/models/iris-lr/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
    got = np.array([p["probabilities"] for p in answer.json()["predictions"]])
    assert np.allclose(got, np.array(out["proba"]), atol=1e-5)


def test_pytorch_models_exported_in_the_sandbox_and_served(served, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    srv, token = served
    out = run_script(srv, token, "pytorch.py", tmp_path)
    assert out["version"] == out["alias"] == out["reg_version"] == "1"
    assert out["refused"] == "not servable: no input example or signature"
    with api(srv, token) as c:
        model = c.get("/api/projects/torch-models/models/iris-torch").json()
        assert model["aliases"] == {"production": 1}
        for name, key in (("iris-torch", "logits"), ("petal-width", "values")):
            url = f"/api/projects/torch-models/models/{name}/predict"
            answer = c.post(url, json={"rows": out["rows"]})
            assert answer.status_code == 200, answer.text
            got = np.array([p["outputs"] for p in answer.json()["predictions"]])
            assert np.allclose(got, np.array(out[key]), atol=1e-4), (got, out[key])
        missing = c.get("/api/projects/torch-models/models/bare-torch")
        assert missing.status_code == 404, missing.text


def _mlflow(c: httpx.Client, path: str, body: dict) -> httpx.Response:
    return c.post(f"/api/2.0/mlflow/{path}", json=body)


def test_large_artifact_streams_up_and_down(served) -> None:
    srv, token = served
    body = np.random.default_rng(0).bytes(3 * (1 << 20) + 123)  # several upload buffers
    with api(srv, token) as c:
        eid = _mlflow(c, "experiments/create", {"name": "big-files"}).json()["experiment_id"]
        run = _mlflow(c, "runs/create", {"experiment_id": eid}).json()["run"]["info"]
        url = f"/api/2.0/mlflow-artifacts/artifacts/{eid}/{run['run_id']}/artifacts/blob.bin"

        def pieces() -> Iterator[bytes]:
            for i in range(0, len(body), 64 * 1024):
                yield body[i : i + 64 * 1024]

        assert c.put(url, content=pieces()).status_code == 200
        assert c.get(url).content == body


def test_bad_input_in_mlflow_shape_and_nothing_stored(served) -> None:
    srv, token = served
    with api(srv, token) as c:
        eid = _mlflow(c, "experiments/create", {"name": "limits"}).json()["experiment_id"]
        run_id = _mlflow(c, "runs/create", {"experiment_id": eid}).json()["run"]["info"]["run_id"]
        metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(1001)]
        resp = _mlflow(c, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
        assert resp.status_code == 400
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "at most 1000 metrics" in resp.json()["message"]
        params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
        resp = _mlflow(c, "runs/log-batch", {"run_id": run_id, "params": params})
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        got = c.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
        assert got["data"]["metrics"] == [] and got["data"]["params"] == []
        resp = c.post("/api/2.0/mlflow/runs/not-a-call", json={})
        assert resp.status_code == 404 and resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        resp = c.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "x"})
        assert resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        for user in ("rita", "otto"):
            c.post("/api/users", json={"name": user, "password": f"{user}-password"})
        c.post("/api/projects/limits/members", json={"user": "rita", "role": "reporter"})
    for user, code in (("rita", "PERMISSION_DENIED"), ("otto", "RESOURCE_DOES_NOT_EXIST")):
        with api(srv, srv.token(user, f"{user}-password")) as c:
            body = {"run_id": run_id, "key": "loss", "value": 1.0, "timestamp": 0}
            resp = _mlflow(c, "runs/log-metric", body)
            assert resp.json()["error_code"] == code, resp.text
    with api(srv, token) as c:
        got = c.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
        assert got["data"]["metrics"] == []


def test_import_mlflow_store_twice_without_duplicates(served, tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    srv, token = served
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "sqlite_store.py")],
        cwd=tmp_path,
        env={**env, "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=patience(300),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cmd = [
        sys.executable, "-m", "reef.cli", "import-mlflow",
        "--from", f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts", str(tmp_path / "mlruns"),
        "--project", "legacy-import", "--server", srv.url, "--token", token,
    ]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(300))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "imported 3 runs (0 already there), 3 params, 102 metric points" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(300))
    assert "imported 0 runs (3 already there)" in second.stdout, second.stdout + second.stderr
    with api(srv, token) as c:
        runs = c.get("/api/projects/legacy-import/runs").json()
        names = sorted(r["name"] for r in runs)
        assert names == ["child", "other", "parent"], runs
        parent = next(r for r in runs if r["name"] == "parent")
        history = c.get(f"/api/projects/legacy-import/runs/{parent['id']}/metrics").json()
        assert len(history["loss"]) == 100
        listing = c.get(
            "/api/2.0/mlflow/artifacts/list", params={"run_id": parent["id"], "path": "notes"}
        ).json()
        assert [f["path"] for f in listing["files"]] == ["notes/readme.txt"]
