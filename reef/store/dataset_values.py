"""Arrow values made JSON-serialisable, for pages of rows, diffs, query results and previews."""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


def cells_differ(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Per row: whether the two cells differ (null equals null, NaN equals NaN)."""
    if a.type != b.type:
        try:
            a = a.cast(b.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _differs_slowly(a, b)
    try:
        unequal = pc.fill_null(pc.not_equal(a, b), False)
    except pa.ArrowNotImplementedError:  # nested types
        return _differs_slowly(a, b)
    one_null = pc.xor(pc.is_null(a), pc.is_null(b))
    result = pc.or_(unequal, one_null)
    if pa.types.is_floating(b.type):
        result = pc.and_(result, pc.invert(pc.and_(pc.is_nan(a), pc.is_nan(b))))
    return np.asarray(pc.fill_null(result, False), dtype=bool)


def _differs_slowly(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.array([x != y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)], bool)
