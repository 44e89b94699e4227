"""Typed response bodies (issue 18, item 1) of the core API: accounts, tokens, users, projects,
members, comments, runs, webhooks, the queue and the worker API. The OpenAPI document
describes each success answer (a schema with properties, or a file's media type), and the
answers whose keys depend on the case keep their exact shape."""

from __future__ import annotations

from typing import Any

from openapi_answers import answer_described, api_operations

from conftest import api_token


def test_every_api_answer_is_described(openapi_doc: dict[str, Any]) -> None:
    """Every operation of reef's JSON API says what it answers, so clients know the API."""
    ops = api_operations(openapi_doc)
    assert len(ops) >= 140, len(ops)  # the routes are there: nothing filtered away
    bare = [f"{m} {p}" for m, p, op in ops if not answer_described(openapi_doc, op)]
    assert not bare, "answers without a described schema:\n" + "\n".join(bare)


def test_files_are_documented_as_files(openapi_doc):
    paths = openapi_doc["paths"]
    assert "text/csv" in paths["/api/usage.csv"]["get"]["responses"]["200"]["content"]
    artifact = paths["/api/projects/{project}/runs/{run_id}/artifacts/{artifact_id}"]["get"]
    assert "application/octet-stream" in artifact["responses"]["200"]["content"]
    worker_input = paths["/api/worker/steps/{step_id}/inputs/{name}"]["get"]
    assert "application/octet-stream" in worker_input["responses"]["200"]["content"]


def test_a_worker_claim_is_either_answer(openapi_doc):
    answer = openapi_doc["paths"]["/api/worker/steps/{step_id}/claim"]["post"]["responses"]["200"]
    options = answer["content"]["application/json"]["schema"]["oneOf"]
    names = {o["$ref"].rsplit("/", 1)[1] for o in options}
    assert names == {"NotToRun", "StepJob"}
    job = openapi_doc["components"]["schemas"]["StepJob"]["properties"]
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
