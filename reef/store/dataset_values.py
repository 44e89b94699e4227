"""Arrow values made JSON-serialisable, for pages of rows, diffs, query results and previews."""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pyarrow as pa


def table_rows(table: pa.Table | pa.RecordBatch) -> list[list[object]]:
    """The rows of `table` as lists of JSON-serialisable values."""
    columns = [column.to_pylist() for column in table.columns]
    return [[jsonable(v) for v in row] for row in zip(*columns, strict=True)]


def jsonable(value: object) -> object:
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
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    return value
