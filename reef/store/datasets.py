"""Versioned datasets: one Lance dataset per (project, name), one version per change.

Imports stream every supported format into Lance without loading the file (see
`dataset_import`); edits, deletes, column changes and restores each commit one version and
keep Lance's stable row ids, so any two versions can be diffed row by row (`dataset_diff`).
Versions are addressed by number or by tag everywhere (`resolve`). A failed change leaves
nothing behind: version 1 is staged and renamed into place, later versions are single Lance
commits that are not made when reading the source fails.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reef.errors import Conflict, InvalidInput, NotFound, ReefError
from reef.store import dataset_changes as changes
from reef.store.dataset_csv import CsvSource
from reef.store.dataset_diff import diff as diff_versions
from reef.store.dataset_import import (
    BATCH_ROWS,
    COLUMN_TYPES,
    ImportOptions,
    Progress,
    Source,
    open_source,
    watched,
)
from reef.store.dataset_key import (
    REEF_DIR,
    check_key_values,
    read_key,
    suggest_key,
    write_key,
)
from reef.store.dataset_predicate import predicate_columns
from reef.store.dataset_profile import cached_profile
from reef.store.dataset_query import (
    deadline,
    export_query,
    run_query,
    sandbox,
    select_statement,
    write_stream,
)
from reef.store.dataset_values import table_rows
from reef.store.dataset_write import (
    SourceFailed,
    as_reader,
    check_schema,
    commit,
    is_dataset,
    lance_errors,
)
from reef.store.import_jobs import ImportJobs
from reef.store.import_limits import Budget, ImportLimits

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
_MAX_PAGE = 1000
_MAX_RETRIES = 32
_FILTER_TIMEOUT_S = 120

VersionRef = int | str | None  # a version number, a tag, or None for the latest


class DatasetNotFound(NotFound):
    """No dataset with that name, or no such version or tag of it."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    num_rows: int
    timestamp: datetime  # Lance version timestamp, timezone-aware (UTC)
    columns: list[tuple[str, str]]  # (name, arrow type as string)
    skipped: int = 0  # what the import left out (files that are not labelled images)
    notes: tuple[str, ...] = ()  # what the import decided (encoding fallback, sheet, ...)
    unchanged: bool = False  # the write held the same rows: no new version, this is the latest


class DatasetStore:
    """Lance datasets under `root/<project>/<name>.lance`.

    Writes to one dataset are serialised by a lock per dataset: Lance rejects an overwrite
    that races another one ("Retryable commit conflict") instead of retrying it.
    """

    def __init__(
        self, root: Path, limits: ImportLimits | None = None, import_workers: int = 2
    ) -> None:
        self.root = Path(root)
        self.limits = limits or ImportLimits()  # what one import may cost
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.imports = ImportJobs(import_workers)  # imports in their threads, with progress

    def uri(self, project: str, name: str) -> Path:
        """The dataset's directory; raises InvalidInput for names that are not slugs."""
        _check_slug("project", project)
        _check_slug("dataset name", name)
        return self.root / project / f"{name}.lance"

    def exists(self, project: str, name: str) -> bool:
        return is_dataset(self.uri(project, name))

    # --- imports ---------------------------------------------------------------------------

    def import_file(
        self,
        project: str,
        name: str,
        src: Path,
        fmt: str | None = None,
        options: ImportOptions | None = None,
        progress: Progress | None = None,
    ) -> VersionInfo:
        """Stream a file (or an image folder) into the next version, or version 1.
        Formats: csv, tsv, parquet, jsonl, arrow, xlsx, images (see `dataset_import`).
        `progress` is called with the rows read so far, batch by batch (from 0 again if
        the import is retried with adjusted types)."""
        uri, options = self.uri(project, name), options or ImportOptions()
        budget = self.limits.budget()
        source = open_source(Path(src), fmt, options, budget)
        if isinstance(source, CsvSource) and is_dataset(uri):  # keep the stored types
            stored = {f.name: f.type for f in lance.dataset(str(uri)).schema}
            source.types = {**stored, **source.types}
        return self._import(uri, source, options, budget, progress)

    def preview(
        self,
        src: Path,
        fmt: str | None = None,
        options: ImportOptions | None = None,
        rows: int = 20,
    ) -> dict[str, Any]:
        """The first rows of a file as they would be imported, with the inferred column types
        and what was detected (delimiter, encoding, sheet), so types can be fixed first."""
        source = open_source(Path(src), fmt, options or ImportOptions(), self.limits.budget())
        table = _read_head(source, max(1, min(rows, _MAX_PAGE)))
        shown = table.select(
            [n for n in table.column_names if not pa.types.is_binary(table.schema.field(n).type)]
        )
        return {
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "column_types": sorted(COLUMN_TYPES),
            "shown_columns": shown.column_names,
            "rows": table_rows(shown),
            "detected": source.details(),
            "notes": list(source.notes),
        }

    def write_table(
        self,
        project: str,
        name: str,
        table_or_reader: pa.Table | pa.RecordBatchReader,
        mode: str = "replace",
    ) -> VersionInfo:
        """Write an Arrow table or reader as the next version (or version 1)."""
        uri = self.uri(project, name)
        ImportOptions(mode=mode)  # validates the mode
        try:
            with self._lock(uri):
                before = _latest(uri)
                ds = commit(uri, lambda: as_reader(table_or_reader), mode, read_key(uri))
        except SourceFailed as failed:
            if isinstance(failed.error, InvalidInput):
                raise failed.error from None
            raise InvalidInput(f"could not read the table: {failed.error}") from failed.error
        return _version_info(ds, unchanged=ds.version == before)

    def append(
        self,
        project: str,
        name: str,
        src_or_table: Path | str | pa.Table | pa.RecordBatchReader,
        fmt: str | None = None,
        options: ImportOptions | None = None,
    ) -> VersionInfo:
        """Add rows (a file in any import format, or Arrow data) as the next version. The
        columns must be the dataset's; values are cast to the dataset's types."""
        if isinstance(src_or_table, pa.Table | pa.RecordBatchReader):
            return self.write_table(project, name, src_or_table, mode="append")
        options = options or ImportOptions()
        appending = dataclasses.replace(options, mode="append")
        return self.import_file(project, name, Path(src_or_table), fmt, appending)

    def _import(
        self,
        uri: Path,
        source: Source,
        options: ImportOptions,
        budget: Budget,
        progress: Progress | None = None,
    ) -> VersionInfo:
        """Write the source, retrying while the source can adjust (CSV types, encoding),
        within the import's time limit; with `options.key`, that column becomes the key
        (checked on the upload first: nothing is written if it cannot be)."""
        opened = watched(source.open, budget, progress)
        for _ in range(_MAX_RETRIES):
            try:
                with self._lock(uri):
                    before = _latest(uri)
                    key = options.key or read_key(uri)
                    ds = commit(uri, opened, options.mode, key, confirm_key=bool(options.key))
                    if options.key:
                        write_key(uri, options.key)
                return _version_info(ds, source, unchanged=ds.version == before)
            except SourceFailed as failed:
                if isinstance(failed.error, ReefError):
                    raise failed.error from None
                if not source.retry(failed.error, failed.names):
                    raise source.problem(failed.error) from failed.error
        raise InvalidInput("the file could not be read: too many type changes")

    # --- changes ---------------------------------------------------------------------------

    def update_rows(
        self, project: str, name: str, updates: Sequence[Mapping[str, Any]], key: str = "_rowid"
    ) -> VersionInfo:
        """Set cells of existing rows, as one new version. Each update names its row by
        `key` (the stable row id `_rowid`, or the declared key column) and gives the new
        values of the columns to change: [{"_rowid": 7, "label": "cat"}, ...]."""
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            ids, cells = _split_updates(ds, updates, key, read_key(uri))
            rows = changes.rows_by_id(ds, ids)
            changes.check_ids_exist(ds, ids, rows)
            position = {row_id: i for i, row_id in enumerate(rows["_rowid"].to_pylist())}
            rows = changes.with_cells(rows.take([position[i] for i in ids]), cells)
            with lance_errors():
                return _version_info(changes.rewrite_rows(ds, rows))

    def delete_rows(self, project: str, name: str, where: str) -> VersionInfo:
        """Delete the rows matching a SQL predicate (DuckDB syntax, e.g. `label = 'dog' AND
        score < 0.5`; see `dataset_predicate` for what is accepted) as a new version."""
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            ids = _matching_ids(ds, where)
            if not ids:
                raise InvalidInput(f"no rows match {where!r}: nothing to delete")
            with lance_errors():
                ds.delete(changes.rowid_filter(ids))
            return _version_info(lance.dataset(str(uri)))

    def add_column(
        self, project: str, name: str, column: str, type: str, default: Any = None
    ) -> VersionInfo:
        """Add a column of `type` (int64, float64, string, bool, timestamp), filled with
        `default` (null when None), as a new version."""
        if type not in COLUMN_TYPES:
            raise InvalidInput(f"unknown column type {type!r}: use {', '.join(COLUMN_TYPES)}")
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            _check_new_column(ds, column)
            with lance_errors():
                ds = changes.add_column(ds, pa.field(column, COLUMN_TYPES[type]), default)
            return _version_info(ds)

    def rename_column(self, project: str, name: str, column: str, new_name: str) -> VersionInfo:
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            _check_column(ds, column)
            _check_new_column(ds, new_name)
            with lance_errors():
                ds.alter_columns(cast(Any, {"path": column, "name": new_name}))
            if read_key(uri) == column:
                write_key(uri, new_name)
            return _version_info(lance.dataset(str(uri)))

    def drop_column(self, project: str, name: str, column: str) -> VersionInfo:
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            _check_column(ds, column)
            if len(ds.schema) == 1:
                raise InvalidInput(f"cannot drop {column!r}: it is the only column")
            if read_key(uri) == column:
                raise InvalidInput(f"cannot drop {column!r}: it is the key; clear the key first")
            with lance_errors():
                ds.drop_columns([column])
            return _version_info(lance.dataset(str(uri)))

    def restore(self, project: str, name: str, version: VersionRef) -> VersionInfo:
        """Make an old version's data the new latest version (history is kept)."""
        uri = self.uri(project, name)
        with self._lock(uri):
            with lance_errors():
                self.open(project, name, version).restore()
            return _version_info(lance.dataset(str(uri)))

    # --- versions, tags, key ---------------------------------------------------------------

    def resolve(self, project: str, name: str, ref: VersionRef) -> int:
        """The version number `ref` names: a number, a tag, "latest" or None (the latest)."""
        return self.open(project, name, ref).version

    def tag(
        self, project: str, name: str, tag: str, version: VersionRef, move: bool = False
    ) -> None:
        """Name a version (e.g. `gold`). An existing tag is a Conflict unless `move`."""
        if not isinstance(tag, str) or not _TAG.match(tag) or tag == "latest":
            raise InvalidInput(
                f"invalid tag {tag!r}: use up to 63 letters, digits, '_', '.' or '-', "
                "starting with a letter"
            )
        uri = self.uri(project, name)
        with self._lock(uri):
            number = self.resolve(project, name, version)
            ds = self.open(project, name)
            exists = tag in ds.tags.list()
            if exists and not move:
                raise Conflict(f"tag {tag!r} already names a version; move it explicitly")
            (ds.tags.update if exists else ds.tags.create)(tag, number)

    def untag(self, project: str, name: str, tag: str) -> None:
        uri = self.uri(project, name)
        with self._lock(uri):
            ds = self.open(project, name)
            if tag not in ds.tags.list():
                raise DatasetNotFound(f"dataset '{project}/{name}' has no tag {tag!r}")
            ds.tags.delete(tag)

    def tags(self, project: str, name: str) -> dict[str, int]:
        """Tag -> version number."""
        listed = self.open(project, name).tags.list()
        return {tag: meta["version"] for tag, meta in sorted(listed.items())}

    def set_key(self, project: str, name: str, column: str | None) -> None:
        """Declare `column` the dataset's key (unique, non-null), or clear it with None."""
        uri = self.uri(project, name)
        with self._lock(uri):
            if column is not None:
                ds = self.open(project, name)
                _check_column(ds, column)
                check_key_values(ds, column)
            write_key(uri, column)

    def key(self, project: str, name: str) -> str | None:
        self.open(project, name)
        return read_key(self.uri(project, name))

    def suggested_key(self, project: str, name: str) -> str | None:
        """A column that could be the key (unique, never empty), when none is declared."""
        ds = self.open(project, name)
        return None if read_key(self.uri(project, name)) else suggest_key(ds)

    def versions(self, project: str, name: str) -> list[VersionInfo]:
        """Every version, oldest first."""
        ds = self.open(project, name)
        return [_version_info(ds.checkout_version(v["version"])) for v in ds.versions()]

    def latest_version(self, project: str, name: str) -> int:
        return self.open(project, name).version

    def info(self, project: str, name: str, version: VersionRef = None) -> VersionInfo:
        return _version_info(self.open(project, name, version))

    def open(self, project: str, name: str, version: VersionRef = None) -> lance.LanceDataset:
        """The Lance dataset at `version` (a number, a tag, or None for the latest)."""
        uri = self.uri(project, name)
        if not is_dataset(uri):
            raise DatasetNotFound(f"dataset '{project}/{name}' not found")
        if version is None or version == "latest":
            return lance.dataset(str(uri))
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        what = "version" if isinstance(version, int) else "version or tag"
        missing = DatasetNotFound(f"dataset '{project}/{name}' has no {what} {version}")
        if (isinstance(version, int) and version < 1) or (
            isinstance(version, str) and not _TAG.match(version)
        ):
            raise missing
        try:
            return lance.dataset(str(uri), version=version)
        except (ValueError, OSError) as exc:
            if "not found" not in str(exc).lower() and "not exist" not in str(exc).lower():
                raise
            raise missing from exc

    # --- reading ---------------------------------------------------------------------------

    def rows(
        self,
        project: str,
        name: str,
        version: VersionRef,
        offset: int,
        limit: int,
        with_row_id: bool = False,
    ) -> tuple[list[str], list[list]]:
        """A page of rows in row-id order as (column names, rows of JSON-serialisable
        values); with `with_row_id` the first column is `_rowid` (what `update_rows` takes)."""
        if offset < 0:
            raise InvalidInput("offset must be 0 or more")
        limit = min(max(limit, 1), _MAX_PAGE)
        ds = self.open(project, name, version)
        table = changes.page_in_row_order(ds, offset, limit)
        names = ["_rowid", *ds.schema.names] if with_row_id else ds.schema.names
        table = table.select(names)
        return table.column_names, table_rows(table)

    def row_ids(
        self, project: str, name: str, version: VersionRef = None, where: str | None = None
    ) -> list[int]:
        """The row ids of a version in order, or of its rows matching the predicate `where`."""
        ds = self.open(project, name, version)
        if where:
            return sorted(_matching_ids(ds, where))
        ids = ds.scanner(columns=[], with_row_id=True).to_table()[changes.ROW_ID]
        return sorted(ids.to_pylist())

    def write_parquet(self, project: str, name: str, version: VersionRef, dest: Path) -> None:
        """Stream a version into a Parquet file; `dest` appears only once complete."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as out:
                self.export(project, name, version, "parquet", out)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def export(self, project: str, name: str, version: VersionRef, fmt: str, dest: BinaryIO) -> int:
        """Stream a version into `dest` as "csv" or "parquet"; the number of rows."""
        ds = self.open(project, name, version)
        return write_stream(ds.scanner(batch_size=BATCH_ROWS).to_reader(), fmt, dest)

    def diff(
        self,
        project: str,
        name: str,
        from_v: VersionRef,
        to_v: VersionRef,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """What changed from `from_v` to `to_v`: schema changes, counts of rows added,
        removed and modified, and a page of the changed rows (see `dataset_diff`)."""
        if offset < 0:
            raise InvalidInput("offset must be 0 or more")
        old, new = self.open(project, name, from_v), self.open(project, name, to_v)
        return diff_versions(old, new, offset, min(max(limit, 1), _MAX_PAGE))

    def query(
        self,
        project: str,
        name_to_version: Mapping[str, VersionRef],
        sql: str,
        limit: int = 1000,
        timeout_s: float = 10,
    ) -> tuple[list[str], list[list[object]], bool]:
        """Run one read-only SELECT over the named datasets (each at its version, under its
        own name): (column names, up to `limit` rows, whether rows were left out)."""
        return run_query(self._tables(project, name_to_version), sql, limit, timeout_s)

    def export_query(
        self,
        project: str,
        name_to_version: Mapping[str, VersionRef],
        sql: str,
        fmt: str,
        dest: BinaryIO,
        timeout_s: float = 300,
    ) -> int:
        """Stream the result of a read-only SELECT into `dest` as CSV or Parquet."""
        tables = self._tables(project, name_to_version)
        return export_query(tables, sql, fmt, dest, timeout_s)

    def check_query(self, sql: str) -> None:
        """InvalidInput unless `sql` is one SELECT statement (for validating before running)."""
        con = sandbox({})
        try:
            select_statement(con, sql)
        finally:
            con.close()

    def profile(self, project: str, name: str, version: VersionRef = None) -> dict[str, Any]:
        """Per-column statistics of a version (see `dataset_profile`), cached per version."""
        ds = self.open(project, name, version)
        return cached_profile(ds, self.uri(project, name) / REEF_DIR)

    def _tables(self, project: str, name_to_version: Mapping[str, VersionRef]) -> dict[str, object]:
        if not name_to_version:
            raise InvalidInput("name at least one dataset to query")
        return {name: self.open(project, name, ref) for name, ref in name_to_version.items()}

    def _lock(self, uri: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uri, threading.Lock())


# --- helpers -------------------------------------------------------------------------------


def _check_slug(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _SLUG.match(value) or ".." in value:
        raise InvalidInput(
            f"invalid {kind} {value!r}: use 1-63 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def _read_head(source: Source, rows: int) -> pa.Table:
    """The first `rows` rows of a source, retrying as an import would."""
    for _ in range(_MAX_RETRIES):
        reader = None
        try:
            reader = source.open()
            check_schema(reader.schema)
            batches, count = [], 0
            for batch in reader:
                batches.append(batch)
                count += batch.num_rows
                if count >= rows:
                    break
            return pa.Table.from_batches(batches, reader.schema).slice(0, rows)
        except (pa.ArrowException, OSError, ValueError) as exc:
            names = reader.schema.names if reader is not None else None
            if not source.retry(exc, names):
                raise source.problem(exc) from exc
    raise InvalidInput("the file could not be read: too many type changes")


def _latest(uri: Path) -> int | None:
    """The latest version of the dataset at `uri`, None if there is none yet."""
    return lance.dataset(str(uri)).version if is_dataset(uri) else None


def _version_info(
    ds: lance.LanceDataset, source: Source | None = None, unchanged: bool = False
) -> VersionInfo:
    version = ds.get_version()
    return VersionInfo(
        version=version["version"],
        num_rows=ds.count_rows(),
        # Lance reports a naive datetime in the machine's local time
        timestamp=cast(datetime, version["timestamp"]).astimezone(UTC),
        columns=[(field.name, str(field.type)) for field in ds.schema],
        skipped=source.skipped if source is not None else 0,
        notes=tuple(source.notes) if source is not None else (),
        unchanged=unchanged,
    )


def _check_column(ds: lance.LanceDataset, column: str) -> None:
    if column not in ds.schema.names:
        raise InvalidInput(
            f"no column {column!r}; the columns are {', '.join(map(repr, ds.schema.names))}"
        )


def _check_new_column(ds: lance.LanceDataset, column: str) -> None:
    if not isinstance(column, str) or not column.strip():
        raise InvalidInput("give the column a name")
    if column in ds.schema.names:
        raise InvalidInput(f"there is already a column {column!r}")
    check_schema(pa.schema([(column, pa.null())]))


def _split_updates(
    ds: lance.LanceDataset, updates: Sequence[Mapping[str, Any]], key: str, declared: str | None
) -> tuple[list[int], list[dict[str, Any]]]:
    """(row id of each update, the cells each sets), after checking names and repeats."""
    if not updates:
        raise InvalidInput("no updates given")
    if key != "_rowid" and key != declared:
        raise InvalidInput(f"rows are named by '_rowid' or the declared key, not {key!r}")
    if any(key not in update for update in updates):
        raise InvalidInput(f"every update must name its row by {key!r}")
    cells = [{c: v for c, v in update.items() if c != key} for update in updates]
    for column in sorted({c for cell in cells for c in cell}):
        _check_column(ds, column)
    names = [update[key] for update in updates]
    ids = _row_ids(names) if key == "_rowid" else changes.ids_for_keys(ds, key, names)
    unique, counts = np.unique(np.asarray(ids, np.uint64), return_counts=True)
    if len(unique) < len(ids):
        raise InvalidInput(f"rows updated more than once: {unique[counts > 1][:20].tolist()}")
    return ids, cells


def _row_ids(values: list[Any]) -> list[int]:
    """`values` checked to be row ids (whole numbers of 0 or more), in one pass."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None
    if (
        array is None
        or not pa.types.is_integer(array.type)
        or array.null_count
        or (len(array) and pc.min(array).as_py() < 0)
    ):
        raise InvalidInput(f"a row id is a whole number of 0 or more, not {_not_id(values)!r}")
    return array.to_pylist()


def _not_id(values: list[Any]) -> Any:
    def bad(v: Any) -> bool:
        return isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64

    return next((v for v in values if bad(v)), values[0])


def _matching_ids(ds: lance.LanceDataset, where: str) -> list[int]:
    """The row ids of the rows for which the validated predicate is true."""
    used = predicate_columns(where, [*ds.schema.names, "_rowid"])
    columns = [c for c in used if c != "_rowid"]
    reader = ds.scanner(columns=columns, with_row_id=True, batch_size=BATCH_ROWS).to_reader()
    con = sandbox({"t": reader})
    try:
        with deadline(con, _FILTER_TIMEOUT_S):
            result = con.execute(f"SELECT _rowid FROM t WHERE {where}").fetchall()
    finally:
        con.close()
    return [row[0] for row in result]
