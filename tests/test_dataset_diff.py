"""Diffs between versions, checked row by row, for every kind of change."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from reef.store.dataset_diff import scanned_moves
from reef.store.dataset_fragments import moved_rows, roaring_values
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


def test_moves_read_from_metadata_match_a_scan(tmp_path: Path) -> None:
    """For every pair of versions across all kinds of change, the rows that moved as read
    from Lance's metadata (deletion files: arrays and Roaring bitmaps, with runs) are the
    rows a scan of both versions finds rewritten or missing."""
    s = DatasetStore(tmp_path / "datasets")
    s.write_table("p", "d", pa.table({"id": list(range(300_000)), "x": [0.5] * 300_000}))
    s.update_rows("p", "d", [{"_rowid": i, "x": 1.0} for i in range(0, 300_000, 7)])
    s.delete_rows("p", "d", "id >= 100000 AND id < 180000")  # a run of deletions
    s.delete_rows("p", "d", "id % 1000 = 3")  # a few, scattered
    s.append("p", "d", pa.table({"id": [1, 2], "x": [9.0, 9.0]}))
    s.restore("p", "d", 2)
    s.add_column("p", "d", "w", "float64", 1.0)
    s.rename_column("p", "d", "w", "weight")
    s.update_rows("p", "d", [{"_rowid": 5, "weight": 2.0}])
    versions = range(1, s.latest_version("p", "d") + 1)
    for a in versions:
        for b in versions:
            old, new = s.open("p", "d", a), s.open("p", "d", b)
            read = moved_rows(old, new)
            assert read is not None, (a, b)
            scanned = scanned_moves(old, new)
            assert np.array_equal(read.gone, scanned.gone), (a, b)
            assert np.array_equal(read.arrived, scanned.arrived), (a, b)
    assert s.diff("p", "d", 8, 9)["counts"] == {"added": 0, "removed": 0, "modified": 1}
    assert s.diff("p", "d", 5, 6)["counts"] == {"added": 80_000 + 220, "removed": 2, "modified": 0}


def test_roaring_bitmaps_of_every_container_kind() -> None:
    """A portable Roaring bitmap with array, bitmap and run containers (written by hand to
    the published format) reads back as its values."""
    values = np.concatenate(
        [np.array([1, 5, 65_535]), 65_536 + np.arange(0, 20_000, 2), 3 * 65_536 + np.arange(7, 900)]
    ).astype(np.uint32)
    containers = [
        (0, 3, b"".join(int(v).to_bytes(2, "little") for v in (1, 5, 65_535)), False),
        (
            1,
            10_000,
            np.packbits(_bits(np.arange(0, 20_000, 2)), bitorder="little").tobytes(),
            False,
        ),
        (
            3,
            893,
            (1).to_bytes(2, "little") + (7).to_bytes(2, "little") + (892).to_bytes(2, "little"),
            True,
        ),
    ]
    assert np.array_equal(roaring_values(_portable(containers)), values)
    assert np.array_equal(roaring_values(_portable(containers[:2], runs=False)), values[:10_003])


def _bits(offsets: np.ndarray) -> np.ndarray:
    bits = np.zeros(1 << 16, np.uint8)
    bits[offsets] = 1
    return bits


def _portable(containers: list, runs: bool = True) -> bytes:
    count = len(containers)
    if runs:
        flags = sum(1 << i for i, c in enumerate(containers) if c[3])
        out = (12347 | ((count - 1) << 16)).to_bytes(4, "little")
        out += flags.to_bytes((count + 7) // 8, "little")
    else:
        out = (12346).to_bytes(4, "little") + count.to_bytes(4, "little")
    for key, cardinality, _, _ in containers:
        out += key.to_bytes(2, "little") + (cardinality - 1).to_bytes(2, "little")
    if not runs or count >= 4:
        out += b"\0" * 4 * count
    return out + b"".join(body for _, _, body, _ in containers)
