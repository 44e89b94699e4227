"""Re-uploads that keep history: a replace upload keeps the row ids of unchanged rows (and,
with a key, of modified rows), so the diff names what changed and the disk grows by about
the change; an upload that changes nothing makes no version."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from reef.errors import InvalidInput
from reef.store.datasets import DatasetStore

REMOVED = (100, 200, 300)
CHANGED = (10, 20, 30, 40, 50, 60, 70)


def export(rows: list[list]) -> bytes:
    """A CSV export (id, name, score) of `rows`."""
    lines = ["id,name,score", *(",".join(map(str, row)) for row in rows)]
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
    ("ids", "problem"), [([1, 1, 2], "repeats values"), ([1, None, 2], "is empty")]
)
def test_a_bad_key_column_stores_nothing(store, ids, problem) -> None:
    store.write_table("p", "d", pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    store.set_key("p", "d", "id")
    with pytest.raises(InvalidInput, match=f"key column 'id' {problem}"):
        store.write_table("p", "d", pa.table({"id": pa.array(ids, pa.int64()), "x": [1.0] * 3}))
    assert store.latest_version("p", "d") == 1
    assert not list((store.uri("p", "d") / "_reef").glob("match-*"))  # its work files are gone
