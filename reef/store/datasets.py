"""Versioned tabular datasets: one Lance dataset per (project, name), one version per write.

Imports stream CSV or Parquet into Lance without loading the file. A failed write leaves
nothing behind: version 1 is staged in a temp dir and renamed into place, and Lance does not
commit a new version when the source reader raises.
"""

from __future__ import annotations

import base64
import csv
import math
import os
import re
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import lance
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from reef.errors import Conflict, InvalidInput, NotFound

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_CSV_BLOCK_BYTES = 1 << 20
_BATCH_ROWS = 64 * 1024
_MAX_PAGE = 1000
_SOURCE_ERRORS = (pa.ArrowException, OSError, ValueError)
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): (.*)", re.S)
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (.+?): invalid value '(.*)'",
    re.S,
)

ReaderFactory = Callable[[], pa.RecordBatchReader]


class DatasetNotFound(NotFound):
    """No dataset with that name, or no such version of it."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    num_rows: int
    timestamp: datetime  # Lance version timestamp, timezone-aware (UTC)
    columns: list[tuple[str, str]]  # (name, arrow type as string)


class _SourceFailed(Exception):
    """The input (file or reader) raised while being read; `names` are its columns if known."""

    def __init__(self, error: Exception, names: list[str] | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.names = names


class _Guard:
    """Wraps a reader so that an error raised by the source is told apart from a Lance error."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def wrap(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader))

    def _batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except Exception as exc:
            self.error = exc
            raise


class DatasetStore:
    """Lance datasets under `root/<project>/<name>.lance`.

    Writes to one dataset are serialised by a lock per dataset: Lance rejects an overwrite
    that races another one ("Retryable commit conflict") instead of retrying it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def uri(self, project: str, name: str) -> Path:
        """The dataset's directory; raises InvalidInput for names that are not slugs."""
        _check_slug("project", project)
        _check_slug("dataset name", name)
        return self.root / project / f"{name}.lance"

    def exists(self, project: str, name: str) -> bool:
        return _is_dataset(self.uri(project, name))

    def import_file(
        self, project: str, name: str, src: Path, fmt: str | None = None
    ) -> VersionInfo:
        """Stream a CSV or Parquet file into the next version (or version 1)."""
        uri, src = self.uri(project, name), Path(src)
        kind = _file_format(src, fmt)
        if not src.is_file():
            raise InvalidInput(f"no such file: {src}")
        if kind == "csv":
            return self._import_csv(uri, src)
        try:
            with self._lock(uri):
                return _commit(uri, lambda: _parquet_reader(src))
        except _SourceFailed as failed:
            raise InvalidInput(f"invalid Parquet file: {failed.error}") from failed.error

    def write_table(
        self, project: str, name: str, table_or_reader: pa.Table | pa.RecordBatchReader
    ) -> VersionInfo:
        """Write an Arrow table or reader as the next version (or version 1)."""
        uri = self.uri(project, name)
        try:
            with self._lock(uri):
                return _commit(uri, lambda: _as_reader(table_or_reader))
        except _SourceFailed as failed:
            raise InvalidInput(f"could not read the table: {failed.error}") from failed.error

    def versions(self, project: str, name: str) -> list[VersionInfo]:
        """Every version, oldest first."""
        ds = self.open(project, name)
        return [_version_info(ds.checkout_version(v["version"])) for v in ds.versions()]

    def latest_version(self, project: str, name: str) -> int:
        return self.open(project, name).version

    def info(self, project: str, name: str, version: int | None = None) -> VersionInfo:
        return _version_info(self.open(project, name, version))

    def rows(
        self, project: str, name: str, version: int | None, offset: int, limit: int
    ) -> tuple[list[str], list[list]]:
        """A page of rows as (column names, rows of JSON-serialisable values)."""
        if offset < 0:
            raise InvalidInput("offset must be 0 or more")
        limit = min(max(limit, 1), _MAX_PAGE)
        table = self.open(project, name, version).to_table(offset=offset, limit=limit)
        columns = [column.to_pylist() for column in table.columns]
        return table.column_names, [
            [_jsonable(v) for v in row] for row in zip(*columns, strict=True)
        ]

    def open(self, project: str, name: str, version: int | None = None) -> lance.LanceDataset:
        """The Lance dataset at `version` (None = latest)."""
        uri = self.uri(project, name)
        if not _is_dataset(uri):
            raise DatasetNotFound(f"dataset '{project}/{name}' not found")
        if version is None:
            return lance.dataset(str(uri))
        missing = DatasetNotFound(f"dataset '{project}/{name}' has no version {version}")
        if version < 1:
            raise missing
        try:
            return lance.dataset(str(uri), version=version)
        except ValueError as exc:
            if "not found" not in str(exc).lower():
                raise
            raise missing from exc

    def write_parquet(self, project: str, name: str, version: int | None, dest: Path) -> None:
        """Stream a version into a Parquet file; `dest` appears only once complete."""
        ds = self.open(project, name, version)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            with pq.ParquetWriter(tmp, ds.schema) as writer:
                for batch in ds.to_batches(batch_size=_BATCH_ROWS):
                    writer.write_batch(batch)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _import_csv(self, uri: Path, src: Path) -> VersionInfo:
        """Import a CSV, retrying with a wider type for a column whose type inference
        (done on the first block only) is contradicted further down the file."""
        delimiter = _sniff_delimiter(src)
        types: dict[str, pa.DataType] = {}
        while True:
            try:
                with self._lock(uri):
                    return _commit(uri, lambda: _csv_reader(src, delimiter, types))
            except _SourceFailed as failed:
                widened = _widened(failed)
                if widened is None or types.get(widened[0]) == widened[1]:
                    raise _csv_problem(failed.error, src, delimiter) from failed.error
                types[widened[0]] = widened[1]

    def _lock(self, uri: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uri, threading.Lock())


# --- names and formats ---------------------------------------------------------------------


def _check_slug(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _SLUG.match(value) or ".." in value:
        raise InvalidInput(
            f"invalid {kind} {value!r}: use 1-63 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def _file_format(src: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt.lower() not in {"csv", "parquet"}:
            raise InvalidInput(f"unsupported format {fmt!r}; upload CSV or Parquet")
        return fmt.lower()
    suffix = src.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    raise InvalidInput(f"unsupported file type {suffix or '(none)'!r}; upload CSV or Parquet")


def _is_dataset(uri: Path) -> bool:
    return (uri / "_versions").is_dir()


# --- writing -------------------------------------------------------------------------------


def _commit(uri: Path, open_reader: ReaderFactory) -> VersionInfo:
    """Write the reader as the next version, or as version 1 via a staged directory."""
    if _is_dataset(uri):
        return _version_info(_write_lance(uri, open_reader, "overwrite"))
    uri.parent.mkdir(parents=True, exist_ok=True)
    staging = uri.parent / f".{uri.name}.{uuid.uuid4().hex}.tmp"
    try:
        staged = _write_lance(staging, open_reader, "create")
        return _version_info(_move_into_place(staged, staging, uri))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staged: lance.LanceDataset, staging: Path, uri: Path) -> lance.LanceDataset:
    """Rename a staged version 1 to `uri`; if another writer created it first, append ours."""
    try:
        staging.rename(uri)
    except OSError:
        if not _is_dataset(uri):
            raise
        return _lance_write(staged.scanner().to_reader(), uri, "overwrite")
    return lance.dataset(str(uri), version=staged.version)


def _write_lance(target: Path, open_reader: ReaderFactory, mode: str) -> lance.LanceDataset:
    """lance.write_dataset, with source errors raised as _SourceFailed."""
    try:
        reader = open_reader()
    except _SOURCE_ERRORS as exc:
        raise _SourceFailed(exc, None) from exc
    _check_schema(reader.schema)
    guard = _Guard()
    try:
        return _lance_write(guard.wrap(reader), target, mode)
    except Exception as exc:
        if guard.error is not None:
            raise _SourceFailed(guard.error, reader.schema.names) from exc
        raise


def _lance_write(reader: pa.RecordBatchReader, target: Path, mode: str) -> lance.LanceDataset:
    """lance.write_dataset, with commit conflicts and rejected schemas as reef errors."""
    # stable row ids can only be chosen at creation; later versions keep the setting
    options = {"enable_stable_row_ids": True} if mode == "create" else {}
    try:
        return lance.write_dataset(reader, str(target), mode=mode, **options)
    except (OSError, ValueError) as exc:
        text = str(exc)
        if "commit conflict" in text:
            raise Conflict(
                "the dataset was written by someone else at the same time; retry"
            ) from exc
        if "LanceError(Schema)" in text or "Invalid user input" in text:
            raise InvalidInput(f"the data cannot be stored: {text.splitlines()[0]}") from exc
        raise


def _check_schema(schema: pa.Schema) -> None:
    if len(schema) == 0:
        raise InvalidInput("the data has no columns")
    duplicates = sorted(n for n, count in Counter(schema.names).items() if count > 1)
    if duplicates:
        raise InvalidInput(f"duplicate column names: {', '.join(map(repr, duplicates))}")
    dotted = [n for n in schema.names if "." in n]
    if dotted:
        raise InvalidInput(
            f"column names cannot contain '.' (Lance reads it as a nested field): "
            f"{', '.join(map(repr, dotted))}; rename them"
        )


def _as_reader(data: pa.Table | pa.RecordBatchReader) -> pa.RecordBatchReader:
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatchReader):
        return data
    raise InvalidInput(f"expected an Arrow Table or RecordBatchReader, got {type(data).__name__}")


# --- reading sources -----------------------------------------------------------------------


def _parquet_reader(src: Path) -> pa.RecordBatchReader:
    parquet = pq.ParquetFile(src)
    return pa.RecordBatchReader.from_batches(parquet.schema_arrow, _parquet_batches(parquet))


def _parquet_batches(parquet: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    with parquet:
        yield from parquet.iter_batches(batch_size=_BATCH_ROWS)


def _csv_reader(src: Path, delimiter: str, types: dict[str, pa.DataType]) -> pa.RecordBatchReader:
    reader = pcsv.open_csv(
        src,
        read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=types),
    )
    binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
    if binary:
        reader.close()
        raise InvalidInput(f"column(s) {', '.join(map(repr, binary))} are not UTF-8 text")
    return reader


def _sniff_delimiter(src: Path) -> str:
    """The most frequent of , ; TAB | in the header line (outside quotes); ',' if none."""
    with src.open("rb") as f:
        head = f.read(_SNIFF_BYTES).decode("utf-8-sig", errors="replace")
    lines = head.splitlines()
    header = re.sub(r'"[^"]*"', "", lines[0]) if lines else ""
    best = max(_DELIMITERS, key=header.count)
    return best if header.count(best) else ","


def _widened(failed: _SourceFailed) -> tuple[str, pa.DataType] | None:
    """(column, wider type) for a CSV conversion error, or None for any other error."""
    match = _CONVERSION.search(str(failed.error))
    if match is None or failed.names is None or int(match[1]) >= len(failed.names):
        return None
    current, value = match[2], match[3]
    if current == "null" and _parses(int, value):
        return failed.names[int(match[1])], pa.int64()
    if (current == "null" or current.startswith(("int", "uint"))) and _parses(float, value):
        return failed.names[int(match[1])], pa.float64()
    return failed.names[int(match[1])], pa.string()


def _parses(kind: type, value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _csv_problem(error: Exception, src: Path, delimiter: str) -> InvalidInput:
    text = str(error)
    if "Empty CSV file" in text:
        return InvalidInput("the CSV file is empty: it needs a header row")
    ragged = _RAGGED.search(text)
    if ragged is None:
        return InvalidInput(f"invalid CSV: {text}")
    expected, got, row = int(ragged[1]), int(ragged[2]), ragged[3].strip()[:80]
    line = _first_ragged_line(src, delimiter)
    where = f"line {line}" if line is not None else "a row"
    return InvalidInput(
        f"invalid CSV: {where} has {got} fields but the header has {expected}: {row!r}"
    )


def _first_ragged_line(src: Path, delimiter: str) -> int | None:
    """The line number of the first row whose field count differs from the header's
    (pyarrow's streaming reader does not report it)."""
    try:
        with src.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    return reader.line_num
    except csv.Error:
        return None
    return None


# --- reading versions ----------------------------------------------------------------------


def _version_info(ds: lance.LanceDataset) -> VersionInfo:
    version = ds.get_version()
    return VersionInfo(
        version=version["version"],
        num_rows=ds.count_rows(),
        # Lance reports a naive datetime in the machine's local time
        timestamp=version["timestamp"].astimezone(UTC),
        columns=[(field.name, str(field.type)) for field in ds.schema],
    )


def _jsonable(value: object) -> object:
    """A Python value from Arrow, made JSON-serialisable (NaN and infinities become None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return value
