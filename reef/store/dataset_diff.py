"""The difference between two versions of a dataset, by stable row id.

A row is the same row in both versions when it has the same `_rowid`. Rows only in the newer
version were added, rows only in the older one removed. A row in both is a candidate for
"modified" only when it is not at the same place in both: Lance never changes a stored row,
an edit deletes the old copy and writes a new one. Where the rows are is read from Lance's
metadata (`dataset_fragments`: deletion files and row-id sequences, no data), so the diff of
a 1% edit of 10M rows reads that metadata and the 1% of rows, nothing else; where the
metadata is not readable here, both versions' row ids and last-updated versions are scanned
instead. Adding a column with values rewrites every row: such a diff reads every row.
Candidates are compared cell by cell on the columns both versions have (matched by Lance
field id, so a renamed column is still compared), in chunks, and only rows with a changed
cell count as modified. Schema changes (columns added, removed, renamed, retyped) are
reported separately and do not make rows "modified".
Both orders work: diff(5, 2) is the change that turns version 5 into version 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reef.store.dataset_changes import ROW_ID
from reef.store.dataset_fragments import Moved, moved_rows
from reef.store.dataset_values import cells_differ, table_rows

_UPDATED = "_row_last_updated_at_version"
_CHUNK = 200_000
_DENSE_FACTOR, _DENSE_SLACK = 4, 1 << 20  # when a row-id-indexed table is worth its memory


@dataclass(frozen=True)
class _Modified:
    """The candidate rows with at least one changed cell: their ids (ascending) and, per
    row, which column pairs changed."""

    ids: np.ndarray
    cells: np.ndarray  # bool, one row per id, one column per column pair
    pairs: list[tuple[str, str]]

    def changed(self, row_id: int) -> list[tuple[str, str]]:
        row = self.cells[int(np.searchsorted(self.ids, row_id))]
        return [pair for pair, hit in zip(self.pairs, row, strict=True) if hit]


def diff(old: lance.LanceDataset, new: lance.LanceDataset, offset: int, limit: int) -> dict:
    """Schema changes, counts of rows added/removed/modified and one page of changed rows."""
    pairs = column_pairs(old, new)
    changes = _changes(moved_rows(old, new) or scanned_moves(old, new))
    candidates = _of_kind(changes, "modified")["id"].to_numpy()
    modified = _modified_cells(old, new, pairs, candidates)
    kept = pc.or_(
        pc.not_equal(changes["change"], "modified"),
        pc.is_in(changes["id"], pa.array(modified.ids, pa.uint64())),
    )
    changes = changes.filter(kept)
    counts = {kind: _count(changes, kind) for kind in ("added", "removed", "modified")}
    return {
        "from": old.version,
        "to": new.version,
        "schema": schema_changes(old, new),
        "counts": counts,
        "columns": new.schema.names,
        "offset": offset,
        "limit": limit,
        "rows": _page_rows(old, new, changes.slice(offset, limit), modified),
    }


def column_pairs(old: lance.LanceDataset, new: lance.LanceDataset) -> list[tuple[str, str]]:
    """(old name, new name) of the columns both versions have, matched by field id."""
    old_ids = {f.id(): f.name() for f in old.lance_schema.fields()}
    return [(old_ids[f.id()], f.name()) for f in new.lance_schema.fields() if f.id() in old_ids]


def schema_changes(old: lance.LanceDataset, new: lance.LanceDataset) -> dict[str, list]:
    pairs = column_pairs(old, new)
    kept_old, kept_new = {o for o, _ in pairs}, {n for _, n in pairs}
    old_types = {f.name: str(f.type) for f in old.schema}
    new_types = {f.name: str(f.type) for f in new.schema}
    return {
        "added": [[n, t] for n, t in new_types.items() if n not in kept_new],
        "removed": [[n, t] for n, t in old_types.items() if n not in kept_old],
        "renamed": [[o, n] for o, n in pairs if o != n],
        "retyped": [
            [n, old_types[o], new_types[n]] for o, n in pairs if old_types[o] != new_types[n]
        ],
    }


def scanned_moves(old: lance.LanceDataset, new: lance.LanceDataset) -> Moved:
    """What `moved_rows` answers, by scanning both versions' row ids and last-updated
    versions: a row moved when it is missing on the other side or was rewritten there.
    Stable row ids are dense (0, 1, 2, ... as rows were added), so each side's versions go
    into an array indexed by row id: a few vectorised passes, no sort or hash of all ids."""
    old_ids, old_updated = _scan(old)
    new_ids, new_updated = _scan(new)
    old_keys, new_keys, size = _dense_keys(old_ids, new_ids)
    seen = np.zeros(size, np.uint32)  # last-updated version + 1 by row; 0: absent
    seen[new_keys] = new_updated
    gone = old_ids[seen[old_keys] != old_updated]
    seen[:] = 0
    seen[old_keys] = old_updated
    arrived = new_ids[seen[new_keys] != new_updated]
    return Moved(np.sort(gone), np.sort(arrived))


def _scan(ds: lance.LanceDataset) -> tuple[np.ndarray, np.ndarray]:
    meta = ds.scanner(columns=[ROW_ID, _UPDATED]).to_table()
    ids = meta[ROW_ID].to_numpy().astype(np.uint64, copy=False)
    updated = meta[_UPDATED].to_numpy().astype(np.uint32)
    updated += 1  # never 0: 0 marks an absent row
    return ids, updated


def _dense_keys(old_ids: np.ndarray, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Row ids as indexes into arrays of `size`: the ids themselves when they are dense
    enough, else their ranks among the ids of both sides."""
    count = len(old_ids) + len(new_ids)
    top = max(int(old_ids.max(initial=0)), int(new_ids.max(initial=0)))
    if top < _DENSE_FACTOR * count + _DENSE_SLACK:
        return old_ids.view(np.int64), new_ids.view(np.int64), top + 1  # ids < 2**63
    unique, ranks = np.unique(np.concatenate([old_ids, new_ids]), return_inverse=True)
    return ranks[: len(old_ids)], ranks[len(old_ids) :], len(unique)


def _changes(moved: Moved) -> pa.Table:
    """(id, change) of every added, removed or candidate ("modified") row, by row id."""
    both = np.intersect1d(moved.gone, moved.arrived, assume_unique=True)
    table = pa.concat_tables(
        [
            _part(np.setdiff1d(moved.arrived, both, assume_unique=True), "added"),
            _part(np.setdiff1d(moved.gone, both, assume_unique=True), "removed"),
            _part(both, "modified"),
        ]
    )
    return table.take(pc.sort_indices(table["id"]))


def _part(ids: np.ndarray, kind: str) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.uint64()), "change": pa.array([kind] * len(ids), pa.string())}
    )


def _of_kind(changes: pa.Table, kind: str) -> pa.Table:
    return changes.filter(pc.equal(changes["change"], kind))


def _count(changes: pa.Table, kind: str) -> int:
    return pc.sum(pc.equal(changes["change"], kind)).as_py() or 0


def _take(ds: lance.LanceDataset, ids: np.ndarray, columns: list[str]) -> pa.Table:
    """The rows with these row ids, in the order of `ids`, with `_rowid` (Lance's row-id
    index; taking by scan position is slow once fragments have deletions)."""
    table = ds._take_rows(pa.array(ids, pa.uint64()), columns=[*columns, ROW_ID])
    found = table[ROW_ID].to_numpy()
    order = np.argsort(found, kind="stable")
    at = order[np.searchsorted(found, ids, sorter=order)]
    return table.take(pa.array(at, pa.int64()))


def _modified_cells(
    old: lance.LanceDataset, new: lance.LanceDataset, pairs: list[tuple[str, str]], ids: np.ndarray
) -> _Modified:
    """The candidate rows (`ids`, ascending) with at least one changed cell, and which
    cells; read in chunks and compared column by column without Python loops."""
    found, masks = [], []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        before = _take(old, chunk, [o for o, _ in pairs])
        after = _take(new, chunk, [n for _, n in pairs])
        mask = np.column_stack(
            [cells_differ(before[o], after[n]) for o, n in pairs] or [np.zeros(len(chunk), bool)]
        )
        hit = mask.any(axis=1)
        found.append(chunk[hit])
        masks.append(mask[hit])
    changed = np.concatenate(found) if found else np.zeros(0, np.uint64)
    cells = np.concatenate(masks) if masks else np.zeros((0, len(pairs)), bool)
    return _Modified(changed, cells, pairs)


def _page_rows(
    old: lance.LanceDataset, new: lance.LanceDataset, page: pa.Table, modified: _Modified
) -> list[dict[str, Any]]:
    ids, kinds = page["id"].to_numpy(), page["change"].to_pylist()
    before = _by_id(old, ids[[kind != "added" for kind in kinds]])
    after = _by_id(new, ids[[kind != "removed" for kind in kinds]])
    rows = []
    for row_id, kind in zip(ids.tolist(), kinds, strict=True):
        values = before[row_id] if kind == "removed" else after[row_id]
        row: dict[str, Any] = {"row_id": row_id, "change": kind, "values": values}
        if kind == "modified":
            row["cells"] = {
                new_name: {"old": before[row_id][old_name], "new": after[row_id][new_name]}
                for old_name, new_name in modified.changed(row_id)
            }
        rows.append(row)
    return rows


def _by_id(ds: lance.LanceDataset, ids: np.ndarray) -> dict[int, dict[str, Any]]:
    names = ds.schema.names
    table = _take(ds, ids, names)
    values = table_rows(table.select(names))
    return {
        row_id: dict(zip(names, row, strict=True))
        for row_id, row in zip(table[ROW_ID].to_pylist(), values, strict=True)
    }
