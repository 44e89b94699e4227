"""An upload that replaces a dataset, made as a change of only the rows that differ.

Rows keep their row ids when they are unchanged (and, with a declared key, when they are
modified), so the new version stores only the changes and the diff shows what changed.

The common way to change many cells is to download a version, edit it (in a spreadsheet, a
script) and upload it again: the rows come back in the order the download wrote them, the
dataset's scan order. With a key, the upload and the stored rows are then read side by side,
batch by batch, compared cell by cell, and only the changed rows are rewritten (keeping their
row ids, as a cell edit does): a 1% change of 10M rows costs two sequential reads and the edit
(`replace_in_order`; None, with nothing written, for anything else).

Every other replace with the same columns and types (`replace_by_content`) matches rows by
their values: the upload goes into a DuckDB temp table (spilling to disk past a memory
limit), a hash of each row's values is computed in DuckDB on both sides, and the rows that
left are deleted and the new ones appended in one commit. With a key, a row that left and a
new row with the same key are one modified row, written with its old row id.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lance.fragment import write_fragments

from reef.store.dataset_changes import (
    ROW_ADDR,
    ROW_ID,
    delete_old_copies,
    rewrite_rows,
    write_with_ids,
)
from reef.store.dataset_key import check_key_column
from reef.store.dataset_values import cells_differ

MAX_CHANGED = 1_000_000  # beyond this many changed rows `replace_by_content` does it in bulk
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
    if not stored.done():
        return None
    if count == 0:
        return ds  # the same rows: no new version
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


def replace_by_content(
    ds: lance.LanceDataset, reader: pa.RecordBatchReader, workdir: Path, key: str | None = None
) -> lance.LanceDataset:
    """Make the dataset hold exactly the rows of `reader` (same columns and types), keeping
    the row ids of the rows whose values did not change: only the rows that left are marked
    deleted and only the new rows are written, in one commit. With a `key`, a row that left
    and a new row with the same key are one modified row, written with its old row id. The
    stored dataset (`ds`, no commit) when nothing changed; InvalidInput, with nothing
    written, when the upload's key column has empty or repeated values."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with _matcher(workdir) as con:
            _match(ds, con, reader, key)
            return _commit_changes(ds, con, key)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _matcher(workdir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that spills to `workdir` beyond a modest memory limit."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": _MATCH_MEMORY,
        "threads": 2,
        "temp_directory": str(workdir),
    }
    con = duckdb.connect(":memory:", config=config)
    try:
        yield con
    finally:
        con.close()


def _match(
    ds: lance.LanceDataset,
    con: duckdb.DuckDBPyConnection,
    reader: pa.RecordBatchReader,
    key: str | None,
) -> None:
    """Tables `upload` (the upload's rows), `gone` (`pos`: the `_rowaddr`, `row_id` and key
    `k` of each stored row that left) and `arrived` (`pos`: the upload's row number, and
    `k`, of each new row)."""
    names = ds.schema.names
    hashes = (
        f"hash({', '.join(map(_quoted, names))}) AS h1, "
        f"hash({', '.join(map(_quoted, reversed(names)))}) AS h2, "
        f"{_quoted(key) if key else 'NULL'} AS k"
    )
    stored = ds.scanner(with_row_id=True, with_row_address=True, batch_size=_BATCH_ROWS)
    con.register("incoming", reader)
    con.register("stored", stored.to_reader())
    con.execute("CREATE TEMP TABLE upload AS SELECT * FROM incoming")
    if key is not None:
        check_key_column(con, "upload", key)
    new, old = (f"rowid AS pos, NULL AS row_id, {hashes} FROM upload",
                f"{ROW_ADDR} AS pos, {ROW_ID} AS row_id, {hashes} FROM stored")  # fmt: skip
    con.execute(_NUMBERED.format(table="new_keys", source=new))
    con.execute(_NUMBERED.format(table="old_keys", source=old))
    con.execute(_UNMATCHED.format(table="arrived", a="new_keys", b="old_keys"))
    con.execute(_UNMATCHED.format(table="gone", a="old_keys", b="new_keys"))


_MATCH_MEMORY = "1GB"
# the n-th copy of a row (by hash) in each table, so that repeated rows pair one to one
_NUMBERED = (
    "CREATE TEMP TABLE {table} AS SELECT *, "
    "row_number() OVER (PARTITION BY h1, h2 ORDER BY pos) AS n FROM (SELECT {source})"
)
_UNMATCHED = (
    "CREATE TEMP TABLE {table} AS "
    "SELECT pos, row_id, k FROM {a} ANTI JOIN {b} USING (h1, h2, n) ORDER BY pos"
)


def _commit_changes(
    ds: lance.LanceDataset, con: duckdb.DuckDBPyConnection, key: str | None
) -> lance.LanceDataset:
    """One commit: the rows that left marked deleted, the modified rows written with their
    old row ids, the new rows as new fragments (Lance gives them new row ids)."""
    ((gone, arrived),) = con.sql(
        "SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM arrived)"
    ).fetchall()
    if gone == 0 and arrived == 0:
        return ds
    addresses = con.sql(f"SELECT pos AS {ROW_ADDR} FROM gone").to_arrow_table()
    updated, removed = delete_old_copies(ds, addresses)
    pairs = "SELECT a.pos, g.row_id FROM arrived a JOIN gone g USING (k)"
    con.execute(f"CREATE TEMP TABLE modified AS {pairs if key else _NO_PAIRS}")
    modified = con.sql(_rows_at(ds, "modified", f", p.row_id AS {ROW_ID}")).to_arrow_table()
    fragments = write_with_ids(ds, _cast_table(modified, ds.schema)) if modified.num_rows else []
    if arrived > modified.num_rows:
        added = _rows_at(ds, "(SELECT pos FROM arrived ANTI JOIN modified USING (pos))", "")
        reader = con.sql(added).to_arrow_reader(_BATCH_ROWS)
        batches = pa.RecordBatchReader.from_batches(ds.schema, _cast(reader, ds.schema))
        fragments += write_fragments(
            batches, ds.uri, schema=ds.schema, data_storage_version=ds.data_storage_version
        )
    operation = lance.LanceOperation.Update(
        removed_fragment_ids=removed, updated_fragments=updated, new_fragments=fragments
    )
    return lance.LanceDataset.commit(ds.uri, operation, read_version=ds.version)


_NO_PAIRS = "SELECT pos, row_id FROM gone WHERE false"


def _rows_at(ds: lance.LanceDataset, positions: str, extra: str) -> str:
    """A query for the upload's rows at the positions (`pos`) of `positions`, in order."""
    columns = ", ".join(f"u.{_quoted(name)}" for name in ds.schema.names)
    return (
        f"SELECT {columns}{extra} FROM upload u JOIN {positions} p ON u.rowid = p.pos "
        "ORDER BY p.pos"
    )


def _cast(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """DuckDB's batches in the dataset's exact types (it may answer e.g. large strings)."""
    for batch in reader:
        yield batch.select(schema.names).cast(schema)


def _cast_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with the dataset's columns in its exact types, and `_rowid`."""
    data = table.select(schema.names).cast(schema)
    return data.append_column(ROW_ID, table[ROW_ID])


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
