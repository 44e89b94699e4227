"""Datasets over the API and the pages: changes as versions, tags, diff, query, downloads,
profile, rules (and a pipeline gated on them), bad inputs and roles."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import api_token, csrf, login

BASE = "/api/projects/p/datasets"
CSV = b"id,x,label\n" + b"".join(f"{i},{i * 0.5},{'ab'[i % 2]}\n".encode() for i in range(40))


@pytest.fixture
def api(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p"}, headers=headers)
    resp = upload(app_client, headers, CSV, name="d", message="first cut")
    assert resp.status_code == 201, resp.text
    return app_client, headers


def upload(client, headers, content: bytes, filename="d.csv", **fields):
    return client.post(BASE, files={"file": (filename, content)}, data=fields, headers=headers)


def change(api, body: dict, status: int = 201) -> dict:
    client, headers = api
    resp = client.post(f"{BASE}/d/versions", json=body, headers=headers)
    assert resp.status_code == status, resp.text
    return resp.json()


def versions(api) -> list[int]:
    client, headers = api
    return [v["version"] for v in client.get(f"{BASE}/d/versions", headers=headers).json()]


def rows(api, version, **query) -> dict:
    client, headers = api
    resp = client.get(f"{BASE}/d/versions/{version}/rows", params=query, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def plan(app_client, inputs: dict, **step) -> list[dict]:
    """The planned steps as the store writes them (one dict of columns per step)."""
    hub = app_client.app.state.hub
    spec = {"steps": [{"name": "split", "module": "split", "inputs": inputs, **step}]}
    return [asdict(s) for s in hub.orchestrator.planner.plan("p", spec, hub.admin())]


def test_each_change_is_a_version_with_author_and_message(api):
    client, headers = api
    change(api, {"op": "append", "rows": [{"id": 40, "x": 20.0, "label": "a"}], "message": "more"})
    first = rows(api, 2, row_ids="true", limit=1)
    assert first["columns"] == ["_rowid", "id", "x", "label"]
    edit = {"_rowid": first["rows"][0][0], "label": "cat"}
    change(api, {"op": "update_rows", "updates": [edit], "message": "fix a label"})
    change(api, {"op": "update_rows", "key": "id", "updates": [{"id": 1, "x": 9.5}]}, status=400)
    client.put(f"{BASE}/d/key", json={"column": "id"}, headers=headers).raise_for_status()
    change(api, {"op": "update_rows", "key": "id", "updates": [{"id": 1, "x": 9.5}]})
    change(api, {"op": "delete_rows", "where": "id >= 38"})
    change(api, {"op": "add_column", "column": "w", "type": "float64", "default": 1.5})
    change(api, {"op": "rename_column", "column": "w", "new_name": "weight"})
    change(api, {"op": "drop_column", "column": "weight"})
    restored = change(api, {"op": "restore", "version": 1, "message": "back to the start"})
    appended = upload(client, headers, b"id,x,label\n99,1.0,b\n", mode="append")
    assert appended.status_code == 201, appended.text
    info = client.get(f"{BASE}/d", headers=headers).json()
    assert info["key"] == "id"
    assert [v["version"] for v in info["versions"]] == list(range(10, 0, -1))
    assert {v["author"] for v in info["versions"]} == {"admin"}
    messages = [v["message"] for v in reversed(info["versions"])]
    assert messages[:4] == ["first cut", "more", "fix a label", "edit 1 row"]
    assert messages[4:8] == [
        "delete rows where id >= 38",
        "add column w (float64)",
        "rename column w to weight",
        "drop column weight",
    ]
    assert messages[8] == "back to the start" and restored["num_rows"] == 40
    assert rows(api, 3, limit=1)["rows"] == [[0, 0.0, "cat"]]
    assert rows(api, 10)["total"] == 41
    audit = client.app.state.hub.audit.list("p")
    assert sum(a["action"] == "dataset.version" for a in audit) == 10


def test_tags_and_time_travel(api, app_client):
    client, headers = api
    assert client.post(f"{BASE}/d/tags/gold", headers=headers).status_code == 201
    change(api, {"op": "delete_rows", "where": "id < 10"})
    assert client.post(f"{BASE}/d/tags/gold", headers=headers).status_code == 409
    assert client.get(f"{BASE}/d", headers=headers).json()["tags"] == {"gold": 1}
    assert rows(api, "gold")["total"] == 40 and rows(api, "latest")["total"] == 30
    assert client.get(f"{BASE}/d/versions/gold", headers=headers).json()["tags"] == ["gold"]
    q = {"sql": "SELECT count(*) AS n FROM d", "version": "gold"}
    assert client.post(f"{BASE}/d/query", json=q, headers=headers).json()["rows"] == [[40]]
    q = {"sql": 'SELECT (SELECT count(*) FROM d) - (SELECT count(*) FROM "d@gold") AS n'}
    assert client.post(f"{BASE}/d/query", json=q, headers=headers).json()["rows"] == [[-10]]
    assert plan(app_client, {"data": "dataset:d@gold"})[0]["inputs"] == {"data": "dataset:d@1"}
    assert plan(app_client, {"data": "dataset:d"})[0]["inputs"] == {"data": "dataset:d@2"}
    resp = client.post(
        "/api/projects/p/pipelines",
        json={
            "name": "x",
            "steps": [{"name": "s", "module": "split", "inputs": {"data": "dataset:d@tin"}}],
        },
        headers=headers,
    )
    assert resp.status_code == 400 and "tin" in resp.json()["detail"]
    assert client.delete(f"{BASE}/d/tags/gold", headers=headers).status_code == 204
    assert client.get(f"{BASE}/d/versions/gold/rows", headers=headers).status_code == 404


def test_diff_counts_and_changed_cells(api):
    client, headers = api
    row_id = rows(api, 1, row_ids="true", limit=1)["rows"][0][0]
    change(api, {"op": "update_rows", "updates": [{"_rowid": row_id, "label": "z"}]})
    change(api, {"op": "delete_rows", "where": "id = 5"})
    change(api, {"op": "append", "rows": [{"id": 77, "x": 1.0, "label": "b"}]})
    change(api, {"op": "add_column", "column": "note", "type": "string"})
    diff = client.get(f"{BASE}/d/diff?from=1&to=5", headers=headers).json()
    assert diff["counts"] == {"added": 1, "removed": 1, "modified": 1}
    assert diff["schema"]["added"] == [["note", "string"]]
    modified = next(r for r in diff["rows"] if r["change"] == "modified")
    assert modified["cells"] == {"label": {"old": "a", "new": "z"}}
    page = client.get(f"{BASE}/d/diff?from=1&to=5&offset=1&limit=1", headers=headers).json()
    assert len(page["rows"]) == 1
    latest = client.get(f"{BASE}/d/diff", headers=headers).json()  # latest against the one before
    assert (latest["from"], latest["to"]) == (4, 5)


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE d",
        "COPY d TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.duckdb' AS x",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELEC * FROM d",
        "SELECT 1; SELECT 2",
        "SELECT nope FROM d",
    ],
)
def test_query_refuses_writes_files_and_bad_sql(api, sql):
    client, headers = api
    resp = client.post(f"{BASE}/d/query", json={"sql": sql}, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["detail"]
    assert versions(api) == [1]


def test_query_limits_and_downloads_stream_the_rows(api):
    client, headers = api
    q = {"sql": "SELECT id, label FROM d WHERE id < 10 ORDER BY id", "limit": 3}
    result = client.post(f"{BASE}/d/query", json=q, headers=headers).json()
    assert result["rows"] == [[0, "a"], [1, "b"], [2, "a"]] and result["truncated"]
    csv = client.post(f"{BASE}/d/query?format=csv", json=q, headers=headers)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv"), csv.text[
        :300
    ]
    assert csv.text.splitlines()[0] == '"id","label"' and len(csv.text.splitlines()) == 11
    bad = client.post(f"{BASE}/d/query?format=csv", json={"sql": "DROP TABLE d"}, headers=headers)
    assert bad.status_code == 400
    parquet = client.get(f"{BASE}/d/versions/1/download?format=parquet", headers=headers)
    assert parquet.status_code == 200
    assert "d-v1.parquet" in parquet.headers["content-disposition"]
    table = pq.read_table(pa.BufferReader(parquet.content))
    assert table.num_rows == 40 and table.column_names == ["id", "x", "label"]
    whole = client.get(f"{BASE}/d/versions/1/download?format=csv", headers=headers)
    assert len(whole.text.splitlines()) == 41
    assert (
        client.get(f"{BASE}/d/versions/1/download?format=xls", headers=headers).status_code == 400
    )


def test_profile(api):
    client, headers = api
    profile = client.get(f"{BASE}/d/versions/1/profile", headers=headers).json()
    x = next(c for c in profile["columns"] if c["name"] == "x")
    assert (x["min"], x["max"], x["nulls"], x["distinct"]) == (0.0, 19.5, 0, 40)
    assert sum(b["count"] for b in x["histogram"]) == 40
    label = next(c for c in profile["columns"] if c["name"] == "label")
    assert {t["value"] for t in label["top"]} == {"a", "b"}


def test_rules_checked_on_new_versions_and_gate_a_pipeline(api, app_client):
    client, headers = api
    rules = [
        {"type": "not_null", "column": "label"},
        {"type": "drift_psi", "column": "x", "threshold": 0.2},
        {"type": "row_count", "min": 10},
    ]
    bad = client.put(f"{BASE}/d/rules", json=[{"type": "range", "column": "nope"}], headers=headers)
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]
    saved = client.put(f"{BASE}/d/rules", json=rules, headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["validation"]["passed"]  # v1: no previous version to drift from
    assert client.get(f"{BASE}/d/rules", headers=headers).json() == rules
    nulls = change(api, {"op": "append", "rows": [{"id": 40, "x": 1.0, "label": None}]})
    checks = {c["rule"]["type"]: c for c in nulls["validation"]["checks"]}
    assert not nulls["validation"]["passed"] and checks["not_null"]["failures"] == 1
    assert checks["not_null"]["examples"] == [{"id": 40, "x": 1.0, "label": None}]
    shifted = b"id,x,label\n" + b"".join(f"{i},{100 + i},a\n".encode() for i in range(40))
    drift = upload(client, headers, shifted, name="d").json()["validation"]
    checks = {c["rule"]["type"]: c for c in drift["checks"]}
    assert checks["not_null"]["passed"] and not checks["drift_psi"]["passed"]
    assert checks["drift_psi"]["psi"]["x"] > 1
    stored = client.get(f"{BASE}/d/versions/3/validation", headers=headers).json()
    assert stored["passed"] is False
    versions_ = client.get(f"{BASE}/d", headers=headers).json()["versions"]
    assert [v["valid"] for v in versions_] == [False, False, True]
    with pytest.raises(Exception, match=r"d@3 failed its rules \(drift_psi\(x <= 0.2\): 1 failing"):
        plan(app_client, {"data": "dataset:d"}, require_valid=True)
    assert plan(app_client, {"data": "dataset:d"})[0]["inputs"] == {"data": "dataset:d@3"}
    assert plan(app_client, {"data": "dataset:d@1"}, require_valid=True)
    steps = [
        {"name": "s", "module": "split", "inputs": {"data": "dataset:d@2"}, "require_valid": True}
    ]
    resp = client.post(
        "/api/projects/p/pipelines", json={"name": "g", "steps": steps}, headers=headers
    )
    assert resp.status_code == 400 and "not_null(label): 1 failing" in resp.json()["detail"]


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buf, "PNG")
    return buf.getvalue()


def evil_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("cat/a.png", png())
        archive.writestr(zipfile.ZipInfo("../evil.png"), png())
    return buf.getvalue()


def workbook() -> bytes:
    book = openpyxl.Workbook()
    book.active.title = "data"
    book.active.append(["id", "x", "label"])
    book.active.append([1, 0.5, "a"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(100)), "x": [0.5] * 100, "label": ["a"] * 100}), buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("filename", "content", "fields", "fragment"),
    [
        ("d.csv", b"id,x,label\n1,2,a\n3,4\n5,6,b,7\n", {}, "line"),
        ("d.parquet", parquet_bytes()[:-200], {}, "arquet"),
        ("d.zip", evil_zip(), {}, "escapes its folder"),
        ("d.xlsx", workbook(), {"sheet": "Nope"}, "no sheet 'Nope'"),
        ("d.csv", CSV, {"column_types": "{bad json"}, "column_types"),
        ("d.csv", CSV, {"column_types": '{"label": "int64"}'}, "invalid value 'a'"),
        ("d.csv", CSV, {"mode": "merge"}, "mode"),
        ("d.csv", b"", {}, "empty"),
    ],
    ids=["ragged", "cut-parquet", "zip-slip", "no-sheet", "bad-json", "bad-type", "mode", "empty"],
)
def test_bad_uploads_are_400_and_make_no_version(api, filename, content, fields, fragment):
    client, headers = api
    files = {"file": (filename, content)}
    resp = client.post(f"{BASE}/d/versions", files=files, data=fields, headers=headers)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["detail"]
    assert versions(api) == [1]
    assert rows(api, 1)["total"] == 40


def test_bad_changes_are_400_and_make_no_version(api):
    for body in [
        {"op": "explode"},
        {"op": "delete_rows", "where": "id = 1; DROP TABLE d"},
        {"op": "delete_rows", "where": "id > 1000"},
        {"op": "update_rows", "updates": [{"_rowid": 10_000, "label": "q"}]},
        {"op": "update_rows", "updates": [{"_rowid": 0, "x": "not a number"}]},
        {"op": "append", "rows": [{"id": "x", "x": 1, "nope": 2}]},
        {"op": "drop_column", "column": "nope"},
        {"op": "add_column", "column": "id", "type": "int64"},
        {"op": "restore", "version": 9},
    ]:
        resp = api[0].post(f"{BASE}/d/versions", json=body, headers=api[1])
        assert resp.status_code in (400, 404), (body, resp.text)
    assert versions(api) == [1]


def test_preview_shows_detected_options_and_takes_types(api):
    client, headers = api
    text = b"id;x;label\n1;0,5;a\n2;1,5;b\n"
    resp = client.post(
        f"{BASE}/preview",
        files={"file": ("semi.csv", text)},
        data={"column_types": json.dumps({"id": "string"})},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    preview = resp.json()
    assert preview["detected"]["delimiter"] == ";"
    assert preview["columns"][0] == {"name": "id", "type": "string"}
    assert client.get(BASE, headers=headers).json()[0]["versions"] == 1


def test_a_reporter_reads_but_cannot_change(api):
    client, headers = api
    client.post("/api/users", json={"name": "rita", "password": "rita-password"}, headers=headers)
    client.post(
        "/api/projects/p/members", json={"user": "rita", "role": "reporter"}, headers=headers
    )
    rita = api_token(client, "rita", "rita-password")
    assert client.get(f"{BASE}/d/versions/1/rows", headers=rita).status_code == 200
    q = {"sql": "SELECT count(*) FROM d"}
    assert client.post(f"{BASE}/d/query", json=q, headers=rita).status_code == 200
    assert client.get(f"{BASE}/d/versions/1/download", headers=rita).status_code == 200
    for resp in [
        client.post(f"{BASE}/d/versions", json={"op": "drop_column", "column": "x"}, headers=rita),
        client.post(f"{BASE}/d/versions", files={"file": ("d.csv", CSV)}, headers=rita),
        client.post(f"{BASE}/d/tags/gold", headers=rita),
        client.put(f"{BASE}/d/key", json={"column": "id"}, headers=rita),
        client.put(f"{BASE}/d/rules", json=[], headers=rita),
        client.post(BASE, files={"file": ("e.csv", CSV)}, headers=rita),
    ]:
        assert resp.status_code == 403, resp.text
        assert "developer" in resp.json()["detail"]
    assert versions(api) == [1]


def test_pages_render_and_a_cell_edit_makes_a_version(api):
    client = api[0]
    login(client)
    page = client.get("/projects/p/datasets/d")
    assert page.status_code == 200 and "first cut" in page.text and 'class="cell"' in page.text
    token = {"x-csrftoken": csrf(page.text)}
    cell = client.get("/projects/p/datasets/d/cell?row=0&column=label&value=a")
    assert 'name="value" value="a"' in cell.text
    form = {"op": "edit_cell", "row": "0", "column": "label", "value": "cat", "message": "typo"}
    resp = client.post(
        "/projects/p/datasets/d/change", data=form, headers={**token, "hx-request": "true"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["hx-redirect"] == "/projects/p/datasets/d"
    assert versions(api) == [2, 1]
    assert "typo" in client.get("/projects/p/datasets/d").text
    diff = client.get("/projects/p/datasets/d/diff?from=1&to=2")
    assert diff.status_code == 200 and "<del>a</del> → <ins>cat</ins>" in diff.text
    paging = {"hx-request": "true", "hx-target": "diff"}  # htmx pages through the changes
    part = client.get("/projects/p/datasets/d/diff?from=1&to=2", headers=paging)
    assert "<del>a</del> → <ins>cat</ins>" in part.text and "<html" not in part.text
    assert client.get("/projects/p/datasets/d/query").status_code == 200
    result = client.post(
        "/projects/p/datasets/d/query",
        data={"sql": "SELECT label FROM d WHERE id = 0"},
        headers=token,
    )
    assert result.status_code == 200 and "<td>cat</td>" in result.text
    assert "Parquet" in result.text
    assert client.get("/projects/p/datasets/d/profile?version=2").status_code == 200
    assert client.get("/projects/p/datasets/d/rules").status_code == 200
    assert client.get("/projects/p/import-dataset?dataset=d").status_code == 200
    preview = client.post(
        "/projects/p/import-dataset/preview",
        files={"file": ("e.csv", b"a;b\n1;x\n")},
        headers=token,
    )
    assert preview.status_code == 200 and 'name="type.a"' in preview.text
    download = client.get("/projects/p/datasets/d/download?version=2&format=csv")
    assert download.status_code == 200 and "cat" in download.text
