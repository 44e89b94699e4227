"""Import sources: each file format opened as a stream of Arrow record batches.

A source is re-openable (`open()`), may ask for another attempt after a failure (`retry`,
used by CSV to widen a column type or fall back to another encoding), turns a read error into
a clear message (`problem`) and reports what it did (`notes`, `skipped`, `details`).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.json as pjson
import pyarrow.parquet as pq

from reef.errors import InvalidInput
from reef.store.dataset_csv import CsvSource
from reef.store.dataset_excel import ExcelSource
from reef.store.dataset_images import ImageSource
from reef.store.import_limits import Budget, ImportLimits

BATCH_ROWS = 64 * 1024
_JSON_BLOCK_BYTES = 16 << 20
_SAMPLE_BYTES = 1 << 20
COLUMN_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
}
FORMATS = ("csv", "tsv", "parquet", "jsonl", "arrow", "xlsx", "images")
_SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
    ".xlsx": "xlsx",
    ".zip": "images",
}
_LABELS = {"parquet": "Parquet", "jsonl": "JSON Lines", "arrow": "Arrow IPC"}


@dataclass(frozen=True)
class ImportOptions:
    """How to read an upload. None means: detect it."""

    delimiter: str | None = None  # CSV/TSV: one character
    encoding: str | None = None  # CSV/TSV: a Python codec name (utf-8, utf-16, cp1252, ...)
    sheet: str | None = None  # xlsx: the sheet's name (default: the first sheet)
    column_types: Mapping[str, str] = field(default_factory=dict)  # name -> COLUMN_TYPES key
    mode: str = "replace"  # "replace": the upload becomes the new version; "append": added
    key: str | None = None  # replace: the column confirmed as the key (unique, never empty)

    def __post_init__(self) -> None:
        if self.mode not in ("replace", "append"):
            raise InvalidInput(f"unknown mode {self.mode!r}: use 'replace' or 'append'")
        if self.key is not None and self.mode != "replace":
            raise InvalidInput("a key is confirmed with a replacing upload, not an append")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise InvalidInput(f"the delimiter must be one character, not {self.delimiter!r}")
        if self.encoding is not None:
            _check_encoding(self.encoding)
        unknown = sorted(set(self.column_types.values()) - set(COLUMN_TYPES))
        if unknown:
            raise InvalidInput(
                f"unknown column type(s) {', '.join(map(repr, unknown))}: "
                f"use {', '.join(COLUMN_TYPES)}"
            )

    def arrow_types(self) -> dict[str, pa.DataType]:
        return {name: COLUMN_TYPES[kind] for name, kind in self.column_types.items()}


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise InvalidInput(f"unknown encoding {encoding!r}") from exc


class Source(Protocol):
    notes: list[str]
    skipped: int

    def open(self) -> pa.RecordBatchReader: ...

    def retry(self, error: Exception, names: list[str] | None) -> bool: ...

    def problem(self, error: Exception) -> InvalidInput: ...

    def details(self) -> dict[str, str]: ...


class FileSource:
    """A format read by one function, with the user's column types cast batch by batch."""

    def __init__(
        self,
        label: str,
        read: Callable[[], pa.RecordBatchReader],
        types: dict[str, pa.DataType],
        budget: Budget,
    ) -> None:
        self.label = label
        self.read = read
        self.types = types
        self.budget = budget
        self.notes: list[str] = []
        self.skipped = 0

    def open(self) -> pa.RecordBatchReader:
        reader = self.read()
        try:
            self.budget.check_columns(len(reader.schema), f"the {self.label} file")
        except BaseException:
            reader.close()
            raise
        return cast_columns(reader, self.types)

    def retry(self, error: Exception, names: list[str] | None) -> bool:
        return False

    def problem(self, error: Exception) -> InvalidInput:
        return InvalidInput(f"invalid {self.label} file: {error}")

    def details(self) -> dict[str, str]:
        return {}


def file_format(src: Path, fmt: str | None) -> str:
    """The format named by `fmt`, or the one the file's suffix (or a directory) implies."""
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise InvalidInput(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt.lower()
    if src.is_dir():
        return "images"
    kind = _SUFFIXES.get(src.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"unsupported file type {src.suffix or '(none)'!r}; upload "
            "CSV, TSV, Parquet, JSON Lines, Arrow IPC, Excel (.xlsx) or a .zip of images"
        )
    return kind


Progress = Callable[[int], None]  # called with the rows read so far


def watched(
    open_reader: Callable[[], pa.RecordBatchReader], budget: Budget, progress: Progress | None
) -> Callable[[], pa.RecordBatchReader]:
    """`open_reader` whose readers call `progress(rows so far)` after each batch and stop
    (LimitExceeded) once the import's time is up."""

    def opened() -> pa.RecordBatchReader:
        reader = open_reader()
        batches = _watching(reader, budget, progress or (lambda rows: None))
        return pa.RecordBatchReader.from_batches(reader.schema, batches)

    return opened


def _watching(
    reader: pa.RecordBatchReader, budget: Budget, progress: Progress
) -> Iterator[pa.RecordBatch]:
    done = 0
    progress(done)
    for batch in reader:
        budget.check_time()
        done += batch.num_rows
        progress(done)
        yield batch


def expected_rows(src: Path, fmt: str | None) -> tuple[int | None, bool]:
    """How many rows a file holds: (exact count, False) where the format records it
    (Parquet, Arrow IPC files), (an estimate from the first 1 MiB, True) for text formats,
    (None, False) otherwise."""
    try:
        kind = file_format(src, fmt)
        if kind == "parquet":
            return pq.ParquetFile(src).metadata.num_rows, False
        if kind == "arrow":
            with pa.memory_map(str(src)) as source:
                return pa.ipc.open_file(source).count_rows(), False
        if kind in ("csv", "tsv", "jsonl"):
            header = 0 if kind == "jsonl" else 1
            return _estimated_lines(src, header), True
    except (pa.ArrowException, OSError, ValueError, InvalidInput):
        pass
    return None, False


def _estimated_lines(src: Path, header: int) -> int | None:
    with src.open("rb") as f:
        head = f.read(_SAMPLE_BYTES)
    lines = head.count(b"\n")
    if not lines:
        return None
    return max(1, round(src.stat().st_size * lines / len(head)) - header)


def open_source(
    src: Path, fmt: str | None, options: ImportOptions, budget: Budget | None = None
) -> Source:
    """The source for `src`; raises InvalidInput for a missing file or unknown format, and
    LimitExceeded for one that is over the limits (`import_limits`) before it is read."""
    budget = budget or ImportLimits().budget()
    kind = file_format(src, fmt)
    if kind != "images" and not src.is_file():
        raise InvalidInput(f"no such file: {src.name}")
    if kind == "images" and not (src.is_dir() or src.is_file()):
        raise InvalidInput(f"no such file or folder: {src.name}")
    types = options.arrow_types()
    if kind in ("csv", "tsv"):
        return CsvSource(src, options.delimiter, options.encoding, types, budget, kind)
    if kind == "xlsx":
        return ExcelSource(src, options.sheet, types, budget)
    if kind == "images":
        return ImageSource(src, budget)
    readers = {"parquet": parquet_reader, "jsonl": jsonl_reader, "arrow": arrow_reader}
    return FileSource(_LABELS[kind], lambda: readers[kind](src), types, budget)


# --- readers -------------------------------------------------------------------------------


def parquet_reader(src: Path) -> pa.RecordBatchReader:
    parquet = pq.ParquetFile(src)
    return pa.RecordBatchReader.from_batches(parquet.schema_arrow, _parquet_batches(parquet))


def _parquet_batches(parquet: pq.ParquetFile) -> Iterator[pa.RecordBatch]:
    with parquet:
        yield from parquet.iter_batches(batch_size=BATCH_ROWS)


def jsonl_reader(src: Path) -> pa.RecordBatchReader:
    """JSON Lines, streamed; the types come from the first 16 MiB of the file."""
    return pjson.open_json(src, read_options=pjson.ReadOptions(block_size=_JSON_BLOCK_BYTES))


def arrow_reader(src: Path) -> pa.RecordBatchReader:
    """An Arrow IPC file (Feather v2) memory-mapped, or an Arrow IPC stream."""
    source = pa.memory_map(str(src))
    try:
        ipc_file = pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
        return pa.ipc.open_stream(source)
    batches = (ipc_file.get_batch(i) for i in range(ipc_file.num_record_batches))
    return pa.RecordBatchReader.from_batches(ipc_file.schema, batches)


def cast_columns(
    reader: pa.RecordBatchReader, types: dict[str, pa.DataType]
) -> pa.RecordBatchReader:
    """The reader with the named columns cast to `types`; unknown names are an error."""
    if not types:
        return reader
    check_columns_exist(types, reader.schema.names)
    schema = pa.schema(
        [pa.field(f.name, types.get(f.name, f.type), f.nullable) for f in reader.schema]
    )
    return pa.RecordBatchReader.from_batches(schema, _cast_batches(reader, schema))


def check_columns_exist(types: Mapping[str, object], names: list[str]) -> None:
    missing = [name for name in types if name not in names]
    if missing:
        raise InvalidInput(
            f"no column(s) {', '.join(map(repr, missing))} to set a type on; "
            f"the columns are {', '.join(map(repr, names))}"
        )


def _cast_batches(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        yield cast_batch(batch, schema)


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with its columns selected and cast as in `schema`; InvalidInput names the
    column whose values do not fit."""
    arrays = []
    for target in schema:
        column = batch.column(target.name)
        try:
            arrays.append(column.cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(
                f"column {target.name!r} cannot be read as {target.type}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
