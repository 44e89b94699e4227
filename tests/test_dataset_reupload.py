"""Re-uploads that keep history: a replace upload keeps the row ids of unchanged rows (and,
with a key, of modified rows), so the diff names what changed and the disk grows by about
the change; an upload that changes nothing makes no version."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conftest import api_token, csrf, login, patience
from reef.errors import InvalidInput
from reef.store.datasets import DatasetStore

REMOVED = (100, 200, 300)
CHANGED = (10, 20, 30, 40, 50, 60, 70)


def export(rows: list[list]) -> bytes:
    """A CSV export (id, name, score) of `rows`."""
    cells = (("" if value is None else str(value) for value in row) for row in rows)
    lines = ["id,name,score", *(",".join(row) for row in cells)]
    return ("\n".join(lines) + "\n").encode()


def base_rows(count: int = 1000) -> list[list]:
    return [[i, f"name {i}", i * 0.5] for i in range(count)]


def changed_rows() -> list[list]:
    """The base with 3 rows removed, 7 changed and 5 added."""
    rows = [[i, name, 999.5 if i in CHANGED else score] for i, name, score in base_rows()]
    rows = [row for row in rows if row[0] not in REMOVED]
    return rows + [[1000 + i, f"new {i}", 1.5] for i in range(5)]


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("key", "counts"),
    [
        (None, {"added": 12, "removed": 10, "modified": 0}),
        ("id", {"added": 5, "removed": 3, "modified": 7}),
    ],
)
def test_a_changed_export_diffs_as_its_changes(store, tmp_path, key, counts) -> None:
    store.import_file("p", "d", write(tmp_path, "a.csv", export(base_rows())))
    if key:
        store.set_key("p", "d", key)
    info = store.import_file("p", "d", write(tmp_path, "b.csv", export(changed_rows())))
    assert (info.version, info.num_rows) == (2, 1002)
    assert store.diff("p", "d", 1, 2)["counts"] == counts
    ids = dict(store.rows("p", "d", None, 0, 1000, with_row_id=True)[1][i][:2] for i in (0, 5))
    assert ids == {0: 0, 5: 5}  # unchanged rows kept their row ids


def test_repeated_rows_pair_one_to_one(store) -> None:
    store.write_table("p", "d", pa.table({"a": [1, 1, 1, 2]}))
    store.write_table("p", "d", pa.table({"a": [1, 2, 1, 3]}))  # one copy of 1 left
    diff = store.diff("p", "d", 1, 2)
    assert diff["counts"] == {"added": 1, "removed": 1, "modified": 0}
    assert sorted(r[0] for r in store.rows("p", "d", None, 0, 10)[1]) == [1, 1, 2, 3]


def test_an_upload_with_the_same_rows_makes_no_version(store, tmp_path) -> None:
    store.import_file("p", "d", write(tmp_path, "a.csv", export(base_rows(50))))
    shuffled = base_rows(50)[::-1]
    for key in (None, "id"):
        if key:
            store.set_key("p", "d", key)
        info = store.import_file("p", "d", write(tmp_path, "b.csv", export(shuffled)))
        assert info.unchanged and info.version == 1
    assert store.latest_version("p", "d") == 1


@pytest.mark.parametrize(
    ("ids", "problem"), [([1, 1, 2], "its values repeat"), ([1, None, 2], "it is empty")]
)
def test_a_bad_key_column_stores_nothing(store, ids, problem) -> None:
    store.write_table("p", "d", pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    store.set_key("p", "d", "id")
    with pytest.raises(InvalidInput, match=f"column 'id' cannot be the key: {problem}"):
        store.write_table("p", "d", pa.table({"id": pa.array(ids, pa.int64()), "x": [1.0] * 3}))
    assert store.latest_version("p", "d") == 1
    assert not list((store.uri("p", "d") / "_reef").glob("match-*"))  # its work files are gone


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("key", [None, "id"])
def test_a_one_percent_re_upload_costs_at_most_3_percent_on_disk(store, key) -> None:
    rows = 100_000
    ids = np.arange(rows)
    x = np.random.default_rng(0).normal(size=rows)
    text = pa.array([f"row {i}" for i in range(rows)])
    store.write_table("p", "d", pa.table({"id": ids, "x": x, "t": text}))
    if key:
        store.set_key("p", "d", key)
    base = size(store.uri("p", "d"))
    changed = x.copy()
    changed[:: rows // 1000] += 1.0  # 1% of the rows, scattered
    order = ids[::-1]  # not the stored order: matched by value (and key), not row by row
    upload = pa.table({"id": ids, "x": changed, "t": text}).take(pa.array(order))
    store.write_table("p", "d", upload)
    counts = store.diff("p", "d", 1, 2)["counts"]
    expected = {"added": 1000, "removed": 1000, "modified": 0}
    assert counts == (expected if key is None else {"added": 0, "removed": 0, "modified": 1000})
    assert (size(store.uri("p", "d")) - base) / base <= 0.03


# --- over HTTP: the upload suggests a key, the person confirms it -----------------------------

API = "/api/projects/p/datasets"


@pytest.fixture
def client(app_client):
    app_client.headers.update(api_token(app_client))
    assert app_client.post("/api/projects", json={"name": "p"}).status_code == 201
    return app_client


def post(client, url: str, content: bytes, **fields):
    return client.post(url, files={"file": ("export.csv", content)}, data=fields)


def counts(client, name: str) -> dict:
    return client.get(f"{API}/{name}/diff", params={"from": 1, "to": 2}).json()["counts"]


def test_upload_suggests_a_key_and_a_confirmed_key_diffs_modified_rows(client) -> None:
    first = post(client, API, export(base_rows()), name="plain")
    assert first.status_code == 201, first.text
    assert first.json()["suggested_key"] == "id"
    state = client.get(f"{API}/plain/key").json()
    assert state["suggested"] == "id" and "tell a changed row from a new one" in state["help"]
    again = post(client, f"{API}/plain/versions", export(changed_rows()))
    assert again.status_code == 201, again.text
    assert counts(client, "plain") == {"added": 12, "removed": 10, "modified": 0}

    confirmed = post(client, API, export(base_rows()), name="keyed", key="id")
    assert confirmed.status_code == 201 and confirmed.json()["suggested_key"] is None
    assert client.get(f"{API}/keyed/key").json() == {**state, "key": "id", "suggested": None}
    assert post(client, f"{API}/keyed/versions", export(changed_rows())).status_code == 201
    assert counts(client, "keyed") == {"added": 5, "removed": 3, "modified": 7}


def test_an_unchanged_upload_answers_200_and_keeps_the_version(client) -> None:
    post(client, API, export(base_rows(20)), name="d")
    again = post(client, f"{API}/d/versions", export(base_rows(20)[::-1]))
    assert again.status_code == 200, again.text
    assert again.json()["unchanged"] and again.json()["detail"] == "unchanged, still version 1"
    assert [v["version"] for v in client.get(f"{API}/d/versions").json()] == [1]


def test_the_import_page_says_an_unchanged_upload_made_no_version(client) -> None:
    post(client, API, export(base_rows(20)), name="d")
    job = post(client, f"{API}/d/versions?wait=false", export(base_rows(20))).json()
    for _ in range(int(patience(60) / 0.1)):
        job = client.get(f"/api/projects/p/imports/{job['id']}").json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "done" and job["result"]["unchanged"], job
    login(client)
    shown = client.get(f"/projects/p/imports/{job['id']}", headers={"hx-request": "true"})
    assert "nothing changed, so no new version was made" in shown.text


def test_a_bad_key_is_refused_naming_the_column_and_nothing_is_stored(client) -> None:
    rows = [[i % 3, f"name {i}", None if i == 4 else i] for i in range(10)]
    content = export(rows)
    for column, problem in (("id", "its values repeat"), ("score", "it is empty")):
        refused = post(client, API, content, name="d", key=column)
        assert refused.status_code == 400 and problem in refused.json()["detail"], refused.text
        assert f"column '{column}'" in refused.json()["detail"]
    assert client.get(f"{API}/d").status_code == 404  # no dataset was made
    post(client, API, export(base_rows(10)), name="d")
    refused = post(client, f"{API}/d/versions", content, key="id")
    assert refused.status_code == 400 and "column 'id'" in refused.json()["detail"]
    assert [v["version"] for v in client.get(f"{API}/d/versions").json()] == [1]
    assert client.get(f"{API}/d/key").json()["key"] is None
    typed = client.put(f"{API}/d/key", json={"column": 5})
    assert typed.status_code == 400 and "column" in typed.text
    assert client.put(f"{API}/d/key", json={"column": "name"}).json()["key"] == "name"


def test_the_dataset_page_offers_the_suggested_key(client) -> None:
    post(client, API, export(base_rows(10)), name="d")
    login(client)
    page = client.get("/projects/p/datasets/d")
    assert 'hx-get="/projects/p/datasets/d/key-suggestion"' in page.text
    offer = client.get("/projects/p/datasets/d/key-suggestion").text
    assert "Use <code>id</code> as the key?" in offer and "a column that names each row" in offer
    token = {"x-csrftoken": csrf(page.text), "hx-request": "true"}
    assert client.post(
        "/projects/p/datasets/d/key", data={"column": "id"}, headers=token
    ).is_success
    assert "key-suggestion" not in client.get("/projects/p/datasets/d").text
