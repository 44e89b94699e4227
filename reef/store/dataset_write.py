"""Writing a stream of record batches as the next version of a Lance dataset, atomically.

Version 1 is staged in a temp dir and renamed into place; later versions are Lance commits,
which Lance does not make when the source reader raises. A source error is told apart from a
Lance error (`SourceFailed`) so that the caller can retry with other settings or explain it.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lance
import pyarrow as pa

from reef.errors import Conflict, InvalidInput
from reef.store.dataset_import import cast_batch
from reef.store.dataset_key import REEF_DIR, check_key_values
from reef.store.dataset_replace import replace_by_content, replace_in_order

SOURCE_ERRORS = (pa.ArrowException, OSError, ValueError, InvalidInput)

ReaderFactory = Callable[[], pa.RecordBatchReader]
Written = TypeVar("Written", lance.LanceDataset, lance.LanceDataset | None)


class SourceFailed(Exception):
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


def is_dataset(uri: Path) -> bool:
    return (uri / "_versions").is_dir()


def commit(
    uri: Path, open_reader: ReaderFactory, mode: str, key: str | None, confirm_key: bool = False
) -> lance.LanceDataset:
    """Write the reader as the next version (or version 1). `mode` "append" adds its rows;
    "replace" makes them the whole dataset: when the columns and types are the same, matched
    on `key` if one is declared, else on the rows' values (rows keep their ids either way),
    and otherwise as a plain overwrite. The stored dataset itself (no new version) when a
    replace changes nothing. With `confirm_key`, the upload's `key` column is checked first
    (a pass over the source): InvalidInput naming it, with nothing written, when it has
    empty or repeated values."""
    if confirm_key and key is not None:
        column = key
        _write(lambda r: _check_key(r, column), open_reader)
    if not is_dataset(uri):
        return _create(uri, open_reader)
    ds = lance.dataset(str(uri))
    if mode == "append":
        append = lambda r: _lance_write(r, uri, "append")  # noqa: E731
        return _write(append, open_reader, lambda r: conform(r, ds.schema))
    same = lambda r: _same(r, ds)  # noqa: E731
    if key is None or key not in ds.schema.names:
        key = None
    else:
        edited = _write(lambda r: _replace_in_order(ds, r, key), open_reader, same)
        if edited is not None:
            return edited
    return _write(lambda r: _replace_by_content(ds, r, uri, key), open_reader, same)


def _check_key(reader: pa.RecordBatchReader, key: str) -> None:
    if key not in reader.schema.names:
        raise InvalidInput(f"the upload has no column {key!r} to be the key")
    check_key_values(reader, key)


def _replace_by_content(
    ds: lance.LanceDataset, reader: pa.RecordBatchReader, uri: Path, key: str | None
) -> lance.LanceDataset:
    """Unchanged rows matched by their values and kept (changed ones matched on `key` when
    there is one); a plain overwrite when the columns or types differ."""
    if not reader.schema.equals(ds.schema):
        return _lance_write(reader, uri, "overwrite")
    workdir = uri / REEF_DIR / f"match-{uuid.uuid4().hex}"
    with lance_errors():
        return replace_by_content(ds, reader, workdir, key)


def _same(reader: pa.RecordBatchReader, ds: lance.LanceDataset) -> pa.RecordBatchReader:
    """The reader with its columns in the dataset's order if it has the same columns and
    types, else unchanged."""
    ours = {f.name: f.type for f in reader.schema}
    if ours != {f.name: f.type for f in ds.schema} or reader.schema.names == ds.schema.names:
        return reader
    batches = (batch.select(ds.schema.names) for batch in reader)
    schema = pa.schema([reader.schema.field(name) for name in ds.schema.names])
    return pa.RecordBatchReader.from_batches(schema, batches)


def _replace_in_order(
    ds: lance.LanceDataset, reader: pa.RecordBatchReader, key: str
) -> lance.LanceDataset | None:
    """Only the changed rows rewritten, when the upload is the dataset's rows in order
    (an edited download); None otherwise, and nothing is written."""
    with lance_errors():
        return replace_in_order(ds, reader, key)


def _create(uri: Path, open_reader: ReaderFactory) -> lance.LanceDataset:
    uri.parent.mkdir(parents=True, exist_ok=True)
    staging = uri.parent / f".{uri.name}.{uuid.uuid4().hex}.tmp"
    try:
        staged = _write(lambda r: _lance_write(r, staging, "create"), open_reader)
        return _move_into_place(staged, staging, uri)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staged: lance.LanceDataset, staging: Path, uri: Path) -> lance.LanceDataset:
    """Rename a staged version 1 to `uri`; if another writer created it first, write ours
    as the next version."""
    try:
        staging.rename(uri)
    except OSError:
        if not is_dataset(uri):
            raise
        return _lance_write(staged.scanner().to_reader(), uri, "overwrite")
    return lance.dataset(str(uri), version=staged.version)


def _write(
    write: Callable[[pa.RecordBatchReader], Written],
    open_reader: ReaderFactory,
    prepare: Callable[[pa.RecordBatchReader], pa.RecordBatchReader] | None = None,
) -> Written:
    """Run `write` on the opened (and prepared) reader, with source errors raised as
    SourceFailed."""
    try:
        reader = open_reader()
    except SOURCE_ERRORS as exc:
        raise SourceFailed(exc, None) from exc
    check_schema(reader.schema)
    names = reader.schema.names  # before `prepare` may reorder them
    if prepare is not None:
        reader = prepare(reader)
    guard = _Guard()
    try:
        return write(guard.wrap(reader))
    except Exception as exc:
        if guard.error is not None:
            raise SourceFailed(guard.error, names) from exc
        raise


def _lance_write(reader: pa.RecordBatchReader, target: Path, mode: str) -> lance.LanceDataset:
    # stable row ids can only be chosen at creation; later versions keep the setting
    options: dict[str, Any] = {"enable_stable_row_ids": True} if mode == "create" else {}
    with lance_errors():
        return lance.write_dataset(reader, str(target), mode=mode, **options)


@contextmanager
def lance_errors() -> Iterator[None]:
    """Lance's commit conflicts and rejected inputs as reef errors."""
    try:
        yield
    except (OSError, ValueError) as exc:
        text = str(exc)
        if "conflict" in text.lower():
            raise Conflict(
                "the dataset was written by someone else at the same time; retry"
            ) from exc
        if "LanceError(Schema)" in text or "Invalid user input" in text:
            raise InvalidInput(f"the data cannot be stored: {_first_line(text)}") from exc
        raise


def _first_line(text: str) -> str:
    line = text.splitlines()[0] if text else text
    return line.split(", /home/")[0].split(", /")[0]


def check_schema(schema: pa.Schema) -> None:
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
    reserved = [n for n in schema.names if n.startswith("_row")]
    if reserved:
        raise InvalidInput(f"column names starting with '_row' are reserved: {reserved}")


def as_reader(data: pa.Table | pa.RecordBatchReader) -> pa.RecordBatchReader:
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatchReader):
        return data
    raise InvalidInput(f"expected an Arrow Table or RecordBatchReader, got {type(data).__name__}")


def conform(reader: pa.RecordBatchReader, schema: pa.Schema) -> pa.RecordBatchReader:
    """`reader` with its columns in the order and types of `schema`; the names must match."""
    missing = [n for n in schema.names if n not in reader.schema.names]
    extra = [n for n in reader.schema.names if n not in schema.names]
    if missing or extra:
        raise InvalidInput(
            "the new rows must have the dataset's columns: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(map(repr, missing))}" if missing else "",
                    f"unknown {', '.join(map(repr, extra))}" if extra else "",
                )
                if part
            )
        )
    batches = (cast_batch(batch, schema) for batch in reader)
    return pa.RecordBatchReader.from_batches(schema, batches)
