"""Typed response bodies of the dataset API (issue 18): every operation under
/api/projects/{project}/datasets and /imports has a described success response in the OpenAPI
document, and the answers whose keys depend on the case still leave out what they left out."""

from __future__ import annotations

from typing import Any

from conftest import api_token


def test_downloads_say_they_are_files(openapi_doc: dict[str, Any]) -> None:
    paths = openapi_doc["paths"]
    download = paths["/api/projects/{project}/datasets/{dataset}/versions/{version}/download"]
    assert set(download["get"]["responses"]["200"]["content"]) == {
        "text/csv",
        "application/vnd.apache.parquet",
    }
    query = paths["/api/projects/{project}/datasets/{dataset}/query"]["post"]["responses"]
    assert set(query["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    upload = paths["/api/projects/{project}/datasets"]["post"]["responses"]
    assert {"200", "201", "202"} <= set(upload)  # new version, unchanged, background job


def test_answers_leave_out_what_their_case_does_not_have(app_client) -> None:
    client, headers = app_client, api_token(app_client)
    client.post("/api/projects", json={"name": "p"}, headers=headers).raise_for_status()
    base = "/api/projects/p/datasets"
    csv = b"id,x\n1,0.5\n2,1.5\n"

    made = client.post(base, files={"file": ("d.csv", csv)}, headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["unchanged"] is False and body["validation"] is None
    assert body["produced_by"] is None and body["suggested_key"] == "id"
    assert "detail" not in body

    same = client.post(base, files={"file": ("d.csv", csv)}, headers=headers)
    assert same.status_code == 200, same.text
    assert same.json()["unchanged"] is True and same.json()["detail"]
    assert not {"author", "message", "source", "validation", "produced_by"} & set(same.json())

    change = {"op": "append", "rows": [{"id": 3, "x": 2.5}]}
    changed = client.post(f"{base}/d/versions", json=change, headers=headers).json()
    assert changed["version"] == 2 and "suggested_key" not in changed and "detail" not in changed

    rules = [{"type": "row_count", "min": 1}, {"type": "unique", "column": "id"}]
    put = client.put(f"{base}/d/rules", json=rules, headers=headers).json()
    assert put["rules"] == rules  # no nulls for the fields a rule does not have
    assert "checked_at" not in put["validation"]
    checks = put["validation"]["checks"]
    assert checks[0]["rows"] == 3 and "examples" not in checks[0]
    assert "rows" not in checks[1] and checks[1]["examples"] == []
    stored = client.get(f"{base}/d/versions/2/validation", headers=headers).json()
    assert stored["checked_at"] and stored["checks"] == checks

    profile = client.get(f"{base}/d/versions/2/profile", headers=headers).json()
    assert "top" not in profile["columns"][0] and profile["columns"][0]["min"] == 1
    diff = client.get(f"{base}/d/diff", headers=headers).json()
    assert (diff["from"], diff["to"]) == (1, 2)
    assert diff["rows"] == [{"row_id": 2, "change": "added", "values": {"id": 3, "x": 2.5}}]
