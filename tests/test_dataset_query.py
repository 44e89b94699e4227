"""Read-only SQL over dataset versions, exports, and profiles."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from reef.errors import InvalidInput
from reef.store.datasets import DatasetStore


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    s = DatasetStore(tmp_path / "datasets")
    s.write_table("p", "pets", pa.table({"id": [1, 2, 3], "label": ["cat", "dog", "cat"]}))
    s.write_table("p", "owner-list", pa.table({"pet": [1, 3], "owner": ["ann", "bob"]}))
    return s


def test_query_joins_datasets_at_versions(store: DatasetStore) -> None:
    store.update_rows("p", "pets", [{"_rowid": 0, "label": "lynx"}])
    sql = 'SELECT p.label, o.owner FROM pets p JOIN "owner-list" o ON o.pet = p.id ORDER BY p.id'
    old = store.query("p", {"pets": 1, "owner-list": None}, sql)
    assert old == (["label", "owner"], [["cat", "ann"], ["cat", "bob"]], False)
    new = store.query("p", {"pets": None, "owner-list": "latest"}, sql)
    assert new[1] == [["lynx", "ann"], ["cat", "bob"]]


def test_query_limit_and_with(store: DatasetStore) -> None:
    sql = (
        "WITH c AS (SELECT label, count(*) AS n FROM pets GROUP BY label) "
        "SELECT * FROM c ORDER BY n DESC"
    )
    assert store.query("p", {"pets": None}, sql, limit=1) == (["label", "n"], [["cat", 2]], True)
    assert store.query("p", {"pets": None}, "SELECT 42 AS x", limit=5) == (["x"], [[42]], False)


def test_query_time_limit(store: DatasetStore) -> None:
    sql = "SELECT count(*) FROM range(1000000000000) a"
    with pytest.raises(InvalidInput, match=r"ran longer than 0\.3 s"):
        store.query("p", {"pets": None}, sql, timeout_s=0.3)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DROP TABLE pets", "only SELECT"),
        ("CREATE TABLE x AS SELECT 1", "only SELECT"),
        ("COPY pets TO '/tmp/x.csv'", "only SELECT"),
        ("ATTACH '/tmp/x.db' AS x", "only SELECT"),
        ("INSTALL httpfs", "only SELECT"),
        ("LOAD httpfs", "only SELECT"),
        ("SET enable_external_access = true", "only SELECT"),
        ("PRAGMA version", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM '/etc/passwd'", "does not exist"),
        ("SELECT * FROM read_parquet('/tmp/x.parquet')", "disabled by configuration"),
        ("SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
        ("SELECT * FROM glob('/etc/*')", "disabled by configuration"),
        ("SELECT getenv('HOME')", "getenv"),
        ("SELECT * FROM store", "does not exist"),
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM pets", "nope"),
    ],
)
def test_query_refuses_writes_and_files(store: DatasetStore, sql: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.query("p", {"pets": None}, sql)
    assert store.latest_version("p", "pets") == 1


def test_export_version_as_csv_and_parquet(store: DatasetStore) -> None:
    store.delete_rows("p", "pets", "id = 2")
    out = io.BytesIO()
    assert store.export("p", "pets", 1, "parquet", out) == 3
    assert pq.read_table(io.BytesIO(out.getvalue())).column("id").to_pylist() == [1, 2, 3]
    out = io.BytesIO()
    assert store.export("p", "pets", None, "csv", out) == 2
    assert out.getvalue().decode() == '"id","label"\n1,"cat"\n3,"cat"\n'
    with pytest.raises(InvalidInput, match="unsupported export format"):
        store.export("p", "pets", None, "xlsx", io.BytesIO())


def test_export_query_result(store: DatasetStore, tmp_path: Path) -> None:
    dest = tmp_path / "q.csv"
    with dest.open("wb") as f:
        rows = store.export_query(
            "p",
            {"pets": None},
            "SELECT label, count(*) AS n FROM pets GROUP BY 1 ORDER BY 1",
            "csv",
            f,
        )
    assert rows == 2
    assert pcsv.read_csv(dest).to_pylist() == [{"label": "cat", "n": 2}, {"label": "dog", "n": 1}]
    with pytest.raises(InvalidInput, match="only SELECT"):
        store.export_query("p", {"pets": None}, "DELETE FROM pets", "csv", io.BytesIO())


def test_write_parquet_by_tag(store: DatasetStore, tmp_path: Path) -> None:
    store.tag("p", "pets", "gold", 1)
    store.delete_rows("p", "pets", "id > 1")
    store.write_parquet("p", "pets", "gold", tmp_path / "gold.parquet")
    assert pq.read_table(tmp_path / "gold.parquet").num_rows == 3


def test_profile(store: DatasetStore) -> None:
    table = pa.table(
        {
            "n": [1, 2, 3, 4, None],
            "x": [0.0, float("nan"), 10.0, 5.0, 5.0],
            "s": ["a", "b", "a", None, "a"],
            "b": [b"xx", b"yyyy", None, None, None],
        }
    )
    store.write_table("p", "prof", table)
    result = store.profile("p", "prof")
    columns = {c["name"]: c for c in result["columns"]}
    assert result["rows"] == 5
    assert columns["n"]["nulls"] == 1 and columns["n"]["distinct"] == 4
    assert (columns["n"]["min"], columns["n"]["max"], columns["n"]["mean"]) == (1, 4, 2.5)
    assert sum(b["count"] for b in columns["n"]["histogram"]) == 4
    assert len(columns["n"]["histogram"]) == 20
    assert (columns["x"]["min"], columns["x"]["max"], columns["x"]["mean"]) == (0.0, 10.0, 5.0)
    assert (
        columns["x"]["histogram"][0]["count"] == 1 and columns["x"]["histogram"][-1]["count"] == 1
    )
    assert columns["s"]["top"] == [{"value": "a", "count": 3}, {"value": "b", "count": 1}]
    assert columns["s"]["type"] == "string"
    assert columns["b"]["mean_bytes"] == 3.0 and columns["b"]["nulls"] == 3
    cache = store.uri("p", "prof") / "_reef" / "profile-v1.json"
    assert json.loads(cache.read_text()) == result
    assert store.profile("p", "prof", 1) == result


def test_profile_constant_and_empty_columns(store: DatasetStore) -> None:
    store.write_table("p", "c", pa.table({"k": [7, 7], "e": pa.array([None, None], pa.float64())}))
    columns = {c["name"]: c for c in store.profile("p", "c")["columns"]}
    assert columns["k"]["histogram"] == [{"low": 7.0, "high": 7.0, "count": 2}]
    assert columns["e"]["histogram"] == [] and columns["e"]["min"] is None
