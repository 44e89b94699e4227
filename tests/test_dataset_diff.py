"""Diffs between versions, checked row by row, for every kind of change."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from reef.store.datasets import DatasetStore


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    s = DatasetStore(tmp_path / "datasets")
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "label": ["cat", "dog", "cat", None],
            "score": [0.5, 1.5, math.nan, 2.0],
        }
    )
    s.write_table("p", "d", table)
    return s


def test_edits_show_changed_cells(store: DatasetStore) -> None:
    store.update_rows(
        "p",
        "d",
        [{"_rowid": 1, "label": "wolf"}, {"_rowid": 3, "label": "owl", "score": 2.0}],
    )
    diff = store.diff("p", "d", 1, 2)
    assert diff["counts"] == {"added": 0, "removed": 0, "modified": 2}
    assert diff["schema"] == {"added": [], "removed": [], "renamed": [], "retyped": []}
    assert diff["rows"] == [
        {
            "row_id": 1,
            "change": "modified",
            "values": {"id": 2, "label": "wolf", "score": 1.5},
            "cells": {"label": {"old": "dog", "new": "wolf"}},
        },
        {
            "row_id": 3,
            "change": "modified",
            "values": {"id": 4, "label": "owl", "score": 2.0},
            "cells": {"label": {"old": None, "new": "owl"}},
        },
    ]


def test_rewrite_with_same_values_is_not_a_change(store: DatasetStore) -> None:
    store.update_rows("p", "d", [{"_rowid": 2, "score": math.nan}, {"_rowid": 3, "label": None}])
    assert store.diff("p", "d", 1, 2)["counts"] == {"added": 0, "removed": 0, "modified": 0}


def test_append_and_delete(store: DatasetStore) -> None:
    store.append("p", "d", pa.table({"id": [5], "label": ["fox"], "score": [0.1]}))
    store.delete_rows("p", "d", "id <= 2")
    diff = store.diff("p", "d", 1, 3)
    assert diff["counts"] == {"added": 1, "removed": 2, "modified": 0}
    assert [(r["row_id"], r["change"], r["values"]["id"]) for r in diff["rows"]] == [
        (0, "removed", 1),
        (1, "removed", 2),
        (4, "added", 5),
    ]
    back = store.diff("p", "d", 3, 1)  # the reverse: what turns version 3 into version 1
    assert back["counts"] == {"added": 2, "removed": 1, "modified": 0}


def test_paging(store: DatasetStore) -> None:
    store.append(
        "p", "d", pa.table({"id": list(range(5, 105)), "label": ["x"] * 100, "score": [0.0] * 100})
    )
    diff = store.diff("p", "d", 1, 2, offset=90, limit=20)
    assert diff["counts"]["added"] == 100
    assert [r["values"]["id"] for r in diff["rows"]] == list(range(95, 105))


def test_schema_changes(store: DatasetStore) -> None:
    store.add_column("p", "d", "checked", "bool", default=False)
    store.rename_column("p", "d", "label", "species")
    store.drop_column("p", "d", "score")
    diff = store.diff("p", "d", 1, 4)
    assert diff["schema"] == {
        "added": [["checked", "bool"]],
        "removed": [["score", "double"]],
        "renamed": [["label", "species"]],
        "retyped": [],
    }
    assert diff["counts"] == {"added": 0, "removed": 0, "modified": 0}
    store.update_rows("p", "d", [{"_rowid": 0, "species": "lion"}])
    rows = store.diff("p", "d", 1, 5)["rows"]
    assert rows == [
        {
            "row_id": 0,
            "change": "modified",
            "values": {"id": 1, "species": "lion", "checked": False},
            "cells": {"species": {"old": "cat", "new": "lion"}},
        }
    ]


def test_restore_diffs_to_nothing(store: DatasetStore) -> None:
    store.update_rows("p", "d", [{"_rowid": 0, "label": "lion"}])
    store.delete_rows("p", "d", "id = 2")
    store.append("p", "d", pa.table({"id": [9], "label": ["emu"], "score": [1.0]}))
    store.restore("p", "d", 1)
    assert store.diff("p", "d", 1, 5)["counts"] == {"added": 0, "removed": 0, "modified": 0}
    diff = store.diff("p", "d", 4, 5)
    assert diff["counts"] == {"added": 1, "removed": 1, "modified": 1}
    assert {r["change"]: r["values"]["id"] for r in diff["rows"]} == {
        "modified": 1,
        "added": 2,
        "removed": 9,
    }
    assert store.rows("p", "d", 5, 0, 10) == store.rows("p", "d", 1, 0, 10)


def test_diff_by_tag(store: DatasetStore) -> None:
    store.tag("p", "d", "gold", 1)
    store.update_rows("p", "d", [{"_rowid": 0, "score": 9.0}])
    diff = store.diff("p", "d", "gold", None)
    assert (diff["from"], diff["to"], diff["counts"]["modified"]) == (1, 2, 1)


def test_sparse_row_ids_diff_the_same(tmp_path: Path) -> None:
    """After most rows are deleted the row ids are sparse (far more ids than rows): the diff
    ranks them instead of indexing arrays by row id, with the same result."""
    s = DatasetStore(tmp_path / "datasets")
    s.write_table("p", "d", pa.table({"id": list(range(1_500_000))}))
    s.delete_rows("p", "d", "id % 10000 <> 0")  # 150 rows left, ids up to 1,490,000
    s.update_rows("p", "d", [{"_rowid": 20_000, "id": -1}])
    s.append("p", "d", pa.table({"id": [7]}))
    diff = s.diff("p", "d", 2, 4)
    assert diff["counts"] == {"added": 1, "removed": 0, "modified": 1}
    assert [(r["row_id"], r["change"]) for r in diff["rows"]] == [
        (20_000, "modified"),
        (1_500_000, "added"),
    ]
    assert diff["rows"][0]["cells"] == {"id": {"old": 20_000, "new": -1}}
    assert s.diff("p", "d", 1, 2)["counts"]["removed"] == 1_500_000 - 150
