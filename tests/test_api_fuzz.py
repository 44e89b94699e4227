"""A short schemathesis run against the served OpenAPI (issue 14, item 7): a few hundred
generated requests across every API operation, as an admin and with ids that exist (a
project, a dataset and its version, a model, a run, a pipeline), must get no 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from test_hardening_limits import seed_lab

from conftest import Server, patience, start_server

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES = 4  # per operation: ~90 operations, a few hundred requests


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, dict]]:
    root = tmp_path_factory.mktemp("fuzz")
    data, hub = root / "data", seed_lab(root)
    token = hub.people.issue_token(hub.admin().user_id, "api")
    hub.close()
    srv = start_server(data, extra=("--workers", "0"))  # no step runs here
    auth = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=srv.url, headers=auth, timeout=patience(30))
    run = client.post("/api/projects/lab/runs", json={"name": "fuzz"}).json()
    steps = [{"name": "split", "module": "split", "inputs": {"data": "dataset:table"}}]
    client.post("/api/projects/lab/pipelines", json={"name": "p", "steps": steps})
    seeds = {"project": "lab", "dataset": "table", "version": "1", "model": "m",
             "run_id": run["id"], "name": "p", "tag": "best", "job": 1}  # fmt: skip
    yield srv, token, seeds
    srv.stop()


# POST/PUT/PATCH operations that take no body: actions named by their path alone
BODYLESS = {
    "/api/tokens",  # HTTP Basic credentials
    "/api/projects/{project}/datasets/{dataset}/versions/{version}/validation",
    "/api/projects/{project}/pipelines/{name}/triggers/{trigger_id}/fire",
    "/api/projects/{project}/runs/{run_id}/cancel",
    "/api/projects/{project}/runs/{run_id}/heartbeat",
    "/api/projects/{project}/runs/{run_id}/rerun",
    "/api/projects/{project}/runs/{run_id}/steps/{step}/retry",
    "/api/projects/{project}/webhooks/{hook_id}/deliveries/{delivery_id}/again",
    "/api/projects/{project}/webhooks/{hook_id}/ping",
    "/api/worker/steps/{step_id}/release",
    "/api/projects/{project}/datasets/{dataset}/labeling/{column}/undo",  # one's latest label
    "/api/projects/{project}/datasets/{dataset}/labeling/{column}/retrain",
}
MLFLOW = ("/api/2.0/", "/api/3.0/", "/ajax-api/")  # MLflow's own wire rules


def test_every_body_is_described(seeded):
    """Each reef operation that takes a body names its schema (a Struct's properties, not a
    bare object), with examples somewhere in it, so clients and fuzzers know the API."""
    srv, _, _ = seeded
    doc = httpx.get(f"{srv.url}/schema/openapi.json", timeout=patience(30)).json()
    missing, vague = [], []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch") or path.startswith(MLFLOW):
                continue
            body = op.get("requestBody")
            if body is None:
                if path not in BODYLESS:
                    missing.append(f"{method.upper()} {path}")
                continue
            for media, content in body["content"].items():
                if not _described(content.get("schema", {}), doc):
                    vague.append(f"{method.upper()} {path} ({media})")
    assert not missing, f"operations without a request body schema: {missing}"
    assert not vague, f"request bodies described only as 'any' or 'object': {vague}"
    examples = json.dumps(doc).count('"examples"')
    assert examples >= 30, f"only {examples} examples in the document"


def _described(schema: dict, doc: dict) -> bool:
    """Whether a body schema says what goes in it (properties, items, a union of those)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return _described(doc["components"]["schemas"][name], doc)
    options = schema.get("oneOf") or schema.get("anyOf")
    if options:
        return all(_described(o, doc) for o in options if o.get("type") != "null")
    if schema.get("type") == "array":
        return _described(schema.get("items", {}), doc)
    return bool(schema.get("properties")) or schema.get("format") == "binary"


def test_generated_requests_get_no_server_error(seeded):
    srv, token, seeds = seeded
    schema = schemathesis.openapi.from_url(f"{srv.url}/schema/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def check(case) -> None:
        nonlocal calls
        if case.method != "DELETE":  # keep the seeded things for the other operations
            for key in case.path_parameters or {}:
                if key in seeds:
                    case.path_parameters[key] = seeds[key]
        resp = case.call(base_url=srv.url, headers=headers, timeout=60)
        calls += 1
        if resp.status_code >= 500:
            errors.append(f"{case.method} {case.formatted_path} -> {resp.status_code} {resp.text}")

    for result in schema.get_all_operations():
        operation = result.ok()
        hypothesis.given(case=operation.as_strategy())(check)()
    print(f"\n{calls} generated requests, {len(errors)} server errors")
    assert calls >= 200
    assert not errors, "\n".join(errors[:20]) + "\n" + srv.output()[-3000:]
