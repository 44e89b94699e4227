"""An upload that replaces a keyed dataset, made as edits of only the rows that changed.

The common way to change many cells is to download a version, edit it (in a spreadsheet, a
script) and upload it again: the rows come back in the order the download wrote them, the
dataset's scan order. Then the upload and the stored rows are read side by side, batch by
batch, compared cell by cell, and only the changed rows are rewritten (keeping their row
ids, as a cell edit does): a 1% change of 10M rows costs two sequential reads and the edit.
Anything else (other keys or order, rows added or removed, other types, or more than
`MAX_CHANGED` changed rows) answers None with nothing written, and the caller merges on the
key instead (`dataset_changes.merge_replace`).
"""

from __future__ import annotations

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reef.store.dataset_changes import ROW_ADDR, ROW_ID, rewrite_rows
from reef.store.dataset_values import cells_differ

MAX_CHANGED = 1_000_000  # beyond this many changed rows Lance's merge does it in bulk
_BATCH_ROWS = 64 * 1024


def replace_in_order(
    ds: lance.LanceDataset, reader: pa.RecordBatchReader, key: str
) -> lance.LanceDataset | None:
    """Commit `reader` as edits of the rows whose cells changed, when it holds the dataset's
    rows in its scan order; None (nothing written) when it does not."""
    if key not in ds.schema.names or not reader.schema.equals(ds.schema):
        return None
    scanner = ds.scanner(with_row_id=True, with_row_address=True, batch_size=_BATCH_ROWS)
    stored = _Slices(scanner.to_reader())
    changed: list[pa.Table] = []
    count = 0
    for batch in reader:
        rows = stored.take(batch.num_rows)
        if rows is None or not _same_keys(batch[key], rows[key]):
            return None
        edited = _edited(pa.Table.from_batches([batch]), rows)
        count += edited.num_rows
        if count > MAX_CHANGED:
            return None
        changed.append(edited)
    if not stored.done() or count == 0:
        return None
    return rewrite_rows(ds, pa.concat_tables(changed))


def _same_keys(ours: pa.Array, theirs: pa.ChunkedArray) -> bool:
    return not ours.null_count and bool(pc.all(pc.equal(ours, theirs.combine_chunks())).as_py())


def _edited(upload: pa.Table, stored: pa.Table) -> pa.Table:
    """The upload's rows whose cells differ from the stored ones, with the stored rows'
    `_rowid` and `_rowaddr` (what `rewrite_rows` takes)."""
    differ = np.zeros(upload.num_rows, bool)
    for name in upload.column_names:
        differ |= cells_differ(stored[name], upload[name])
    mask = pa.array(differ)
    edited = upload.filter(mask)
    edited = edited.append_column(ROW_ID, stored[ROW_ID].filter(mask))
    return edited.append_column(ROW_ADDR, stored[ROW_ADDR].filter(mask))


class _Slices:
    """The stored rows in scan order, handed out in slices of the upload's batch sizes."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader = reader
        self.buffer: list[pa.RecordBatch] = []
        self.buffered = 0

    def take(self, count: int) -> pa.Table | None:
        """The next `count` rows, or None when fewer are left."""
        while self.buffered < count and self._read():
            pass
        if self.buffered < count:
            return None
        table = pa.Table.from_batches(self.buffer, self.reader.schema)
        head, rest = table.slice(0, count), table.slice(count)
        self.buffer, self.buffered = rest.to_batches(), rest.num_rows
        return head

    def done(self) -> bool:
        return self.buffered == 0 and not self._read()

    def _read(self) -> bool:
        try:
            batch = self.reader.read_next_batch()
        except StopIteration:
            return False
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        return True
