"""Typed response bodies (issue 18, item 1) of the core API: accounts, tokens, users, projects,
members, comments, runs, webhooks, the queue and the worker API. The OpenAPI document
describes each success answer (a schema with properties, or a file's media type), and the
answers whose keys depend on the case keep their exact shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import api_token
from reef.settings import Settings

MLFLOW = ("/api/2.0/", "/api/3.0/", "/ajax-api/")
OTHER_SLICES = tuple(
    f"/api/projects/{{project}}/{part}"
    for part in (
        "datasets",
        "imports",
        "models",
        "pipelines",
        "gates",
        "sweeps",
        "modules",
        "compare",
    )
)
# answers that are maps with keys of the caller's choosing (metric names): no fixed
# properties to describe, so the map's values must be described instead
MAPS = {("get", "/api/projects/{project}/runs/{run_id}/metrics")}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from reef.server.app import create_app

    app = create_app(Settings(data_dir=Path(tmp_path_factory.mktemp("responses"))))
    return app.openapi_schema.to_schema()


def described(schema: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether a schema says what is in the body (properties, items, a union of those)."""
    if "$ref" in schema:
        return described(doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc)
    options = schema.get("oneOf") or schema.get("anyOf")
    if options:
        return all(described(o, doc) for o in options if o.get("type") != "null")
    if schema.get("type") == "array":
        return described(schema.get("items", {}), doc)
    return bool(schema.get("properties")) or schema.get("format") == "binary"


def success_described(op: dict[str, Any], doc: dict[str, Any], is_map: bool) -> bool:
    for code, answer in op.get("responses", {}).items():
        if not code.startswith("2"):
            continue
        if code == "204":
            return True
        for media, content in (answer.get("content") or {}).items():
            schema = content.get("schema", {})
            if "json" not in media:
                return True  # a file, a CSV, a stream
            if described(schema, doc):
                return True
            if is_map and schema.get("additionalProperties", {}).get("type"):
                return True
    return False


def core_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/") and not path.startswith(MLFLOW + OTHER_SLICES)
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_core_answer_is_described(doc):
    ops = core_operations(doc)
    assert len(ops) >= 55, [f"{m} {p}" for m, p, _ in ops]
    vague = [
        f"{method.upper()} {path}"
        for method, path, op in ops
        if not success_described(op, doc, (method, path) in MAPS)
    ]
    assert not vague, f"answers described only as 'any' or 'object': {vague}"


def test_files_are_documented_as_files(doc):
    paths = doc["paths"]
    assert "text/csv" in paths["/api/usage.csv"]["get"]["responses"]["200"]["content"]
    artifact = paths["/api/projects/{project}/runs/{run_id}/artifacts/{artifact_id}"]["get"]
    assert "application/octet-stream" in artifact["responses"]["200"]["content"]
    worker_input = paths["/api/worker/steps/{step_id}/inputs/{name}"]["get"]
    assert "application/octet-stream" in worker_input["responses"]["200"]["content"]


def test_a_worker_claim_is_either_answer(doc):
    answer = doc["paths"]["/api/worker/steps/{step_id}/claim"]["post"]["responses"]["200"]
    options = answer["content"]["application/json"]["schema"]["oneOf"]
    names = {o["$ref"].rsplit("/", 1)[1] for o in options}
    assert names == {"NotToRun", "StepJob"}
    job = doc["components"]["schemas"]["StepJob"]["properties"]
    assert {"step_id", "module", "inputs", "outputs", "env", "timeout_s"} <= set(job)


def test_keys_that_depend_on_the_case_keep_their_shape(app_client):
    """A script run gets heartbeat_s, a created user the way in reef chose (and nothing when
    the admin chose a password), a password reset either a password or an invite link."""
    app_client.headers.update(api_token(app_client))
    assert app_client.post("/api/projects", json={"name": "lab"}).status_code == 201
    run = app_client.post("/api/projects/lab/runs", json={"name": "nb"}).json()
    assert set(run) == {"id", "heartbeat_s"}

    chosen = app_client.post("/api/users", json={"name": "ann", "password": "ann-password-1"})
    assert "password" not in chosen.json() and "invite_url" not in chosen.json()
    made = app_client.post("/api/users", json={"name": "ben"}).json()
    assert made["must_change_password"] is True and "invite_url" not in made
    assert len(made["password"]) >= 12
    reset = app_client.post("/api/users/ben/reset-password", json={"invite": True}).json()
    assert set(reset) == {"user", "invite_url"}

    logs = app_client.get(f"/api/projects/lab/runs/{run['id']}/logs").json()
    assert logs == {"logs": {}}
    token = app_client.post("/api/account/tokens", json={"name": "ci"}).json()
    listed = app_client.get("/api/account/tokens").json()
    assert set(token) == set(listed[0]) | {"token", "user"}
    assert token["expires_at"] is None  # a null stays in the answer
