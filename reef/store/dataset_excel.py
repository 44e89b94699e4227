"""Excel (.xlsx) sources, read with openpyxl in read-only mode (rows streamed, never the
whole workbook in memory).

The first row is the header. Column types come from a first pass over every row (Excel cells
carry their own types, so no guessing from text): all integers -> int64, numbers -> float64,
booleans -> bool, dates and times of day with a date -> timestamp, anything mixed -> string.
The second pass streams the rows as batches of those types.

The sheet's declared dimensions are ignored (a 1.5 KB file may claim 16,384 columns or a
million rows): rows are as wide as their cells, and a row numbered beyond Excel's own limit is
refused. The workbook passes `check_workbook` (sizes, over-long texts) before openpyxl opens it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reef.errors import InvalidInput
from reef.store.import_limits import EXCEL_MAX_ROWS, Budget, LimitExceeded, check_workbook

if TYPE_CHECKING:
    import openpyxl

_BATCH_ROWS = 16 * 1024
_KIND_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "string": pa.string(),
}


class ExcelSource:
    """One sheet of an .xlsx workbook as a stream of record batches."""

    def __init__(
        self, src: Path, sheet: str | None, types: dict[str, pa.DataType], budget: Budget
    ) -> None:
        self.src = src
        self.types = types
        self.budget = budget
        try:
            check_workbook(src, budget)
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"not a readable Excel .xlsx workbook: {exc}") from exc
        self.notes: list[str] = []
        self.skipped = 0
        with _workbook(src) as book:
            names = book.sheetnames
        if sheet is not None and sheet not in names:
            raise InvalidInput(
                f"the workbook has no sheet {sheet!r}; its sheets are {', '.join(map(repr, names))}"
            )
        self.sheet = sheet if sheet is not None else names[0]

    def open(self) -> pa.RecordBatchReader:
        header, kinds = self._scan()
        schema = pa.schema(
            [
                (name, self.types.get(name, _KIND_TYPES[kind]))
                for name, kind in zip(header, kinds, strict=True)
            ]
        )
        return pa.RecordBatchReader.from_batches(schema, self._batches(schema))

    def retry(self, error: Exception, names: list[str] | None) -> bool:
        return False

    def problem(self, error: Exception) -> InvalidInput:
        return InvalidInput(f"invalid Excel file: {error}")

    def details(self) -> dict[str, str]:
        return {"sheet": self.sheet}

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        with _workbook(self.src) as book:
            sheet = book[self.sheet]
            sheet.reset_dimensions()  # the rows as they are, not as the file claims
            for number, row in enumerate(sheet.iter_rows(values_only=True), 1):
                if number > EXCEL_MAX_ROWS:
                    raise LimitExceeded(
                        f"sheet {self.sheet!r} has rows numbered beyond {EXCEL_MAX_ROWS:,}, "
                        "Excel's own limit: it was not written by Excel; save it as CSV"
                    )
                if number % 4096 == 0:
                    self.budget.check_time()
                yield row

    def _scan(self) -> tuple[list[str], list[str]]:
        rows = self._rows()
        first = next(rows, None)
        if first is None or all(v is None for v in first):
            raise InvalidInput(f"sheet {self.sheet!r} is empty: it needs a header row")
        self.budget.check_columns(len(first), f"the header row of sheet {self.sheet!r}")
        header = [_column_name(v, i) for i, v in enumerate(first)]
        kinds: list[str | None] = [None] * len(header)
        for row in rows:
            for i, value in enumerate(row[: len(header)]):
                kinds[i] = _merge(kinds[i], _kind(value))
        self.notes.append(f"read sheet {self.sheet!r}")
        return header, [kind or "string" for kind in kinds]

    def _batches(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        rows = self._rows()
        next(rows, None)  # the header
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            if any(v is not None for v in row):
                chunk.append(row)
            if len(chunk) >= _BATCH_ROWS:
                yield _batch(chunk, schema)
                chunk = []
        if chunk:
            yield _batch(chunk, schema)


class _workbook:
    def __init__(self, src: Path) -> None:
        import openpyxl  # only when a workbook is read: a tenth of a second off every start
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            self.book = openpyxl.load_workbook(src, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
            raise InvalidInput(f"not a readable Excel .xlsx workbook: {exc}") from exc

    def __enter__(self) -> openpyxl.Workbook:
        return self.book

    def __exit__(self, *exc: object) -> None:
        self.book.close()


def _column_name(value: Any, index: int) -> str:
    if value is None or str(value).strip() == "":
        return f"column_{index + 1}"
    return str(value).strip()


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime | date):
        return "timestamp"
    return "string"


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b if a is None else a
    if b is None:
        return a
    if {a, b} == {"int", "float"}:
        return "float"
    return "string"


def _batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for i, target in enumerate(schema):
        values = [_convert(row[i] if i < len(row) else None, target.type) for row in rows]
        try:
            arrays.append(pa.array(values, target.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(_cast_text(values, target))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _convert(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(kind):
        return value.isoformat() if isinstance(value, datetime | date) else str(value)
    if pa.types.is_floating(kind) and isinstance(value, int | float):
        return float(value)
    if pa.types.is_timestamp(kind) and type(value) is date:
        return datetime(value.year, value.month, value.day)
    return value


def _cast_text(values: list[Any], target: pa.Field) -> pa.Array:
    """A column the user asked to read as another type: its values as text, then cast."""
    text = pa.array([None if v is None else str(v) for v in values], pa.string())
    try:
        return text.cast(target.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(
            f"column {target.name!r} cannot be read as {target.type}: {exc}"
        ) from exc
