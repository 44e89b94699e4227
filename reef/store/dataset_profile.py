"""Column profiles of one dataset version, computed with DuckDB over Lance and cached.

Per column: Arrow type, null count, distinct count; for numbers min/max/mean (NaN ignored)
and a 20-bin histogram; for text and booleans the 10 most frequent values; for timestamps and
dates min/max; for binary columns (images) the mean length in bytes. A version never changes,
so its profile is written once to `<dataset>/_reef/profile-v<N>.json` and read from there.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb
import lance
import pyarrow as pa

from reef.store.dataset_values import jsonable

BINS = 20
TOP = 10


def cached_profile(ds: lance.LanceDataset, cache_dir: Path) -> dict[str, Any]:
    """The profile of `ds` at its version, from the cache or computed and cached."""
    path = cache_dir / f"profile-v{ds.version}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = profile(ds)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(result, allow_nan=False))
    os.replace(tmp, path)
    return result


def profile(ds: lance.LanceDataset) -> dict[str, Any]:
    with duckdb.connect(":memory:") as con:
        con.register("t", ds)
        counts = _counts(con, ds.schema)
        columns = [_column(con, field, counts) for field in ds.schema]
    return {"version": ds.version, "rows": counts["rows"], "columns": columns}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _family(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return "text"
    if pa.types.is_temporal(kind):
        return "time"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "binary"
    return "other"


def _counts(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, Any]:
    """The row count, and per column the non-null and distinct counts, in one scan."""
    parts = ["count(*)"]
    for field in schema:
        parts.append(f"count({_q(field.name)})")
        distinct = _family(field.type) in ("number", "text", "time")
        parts.append(f"count(DISTINCT {_q(field.name)})" if distinct else "NULL")
    values = con.sql(f"SELECT {', '.join(parts)} FROM t").fetchall()[0]
    counts: dict[str, Any] = {"rows": values[0]}
    for i, field in enumerate(schema):
        counts[field.name] = (values[1 + 2 * i], values[2 + 2 * i])
    return counts


def _column(con: duckdb.DuckDBPyConnection, field: pa.Field, counts: dict) -> dict[str, Any]:
    present, distinct = counts[field.name]
    result: dict[str, Any] = {
        "name": field.name,
        "type": str(field.type),
        "nulls": counts["rows"] - present,
        "distinct": distinct,
    }
    family = _family(field.type)
    if family == "number":
        result.update(_numbers(con, field))
    elif family == "text":
        result["top"] = _top(con, field.name)
    elif family == "time":
        result.update(_min_max(con, _q(field.name)))
    elif family == "binary":
        mean = con.sql(f"SELECT avg(octet_length({_q(field.name)})) FROM t").fetchall()[0][0]
        result["mean_bytes"] = jsonable(mean)
    return result


def _value(field: pa.Field) -> str:
    name = _q(field.name)
    if pa.types.is_floating(field.type):
        return f"CASE WHEN isnan({name}) OR isinf({name}) THEN NULL ELSE {name} END"
    return f"CAST({name} AS DOUBLE)"


def _numbers(con: duckdb.DuckDBPyConnection, field: pa.Field) -> dict[str, Any]:
    value = _value(field)
    low, high, mean = con.sql(
        f"SELECT min(v), max(v), avg(v) FROM (SELECT {value} AS v FROM t)"
    ).fetchall()[0]
    result: dict[str, Any] = {"min": jsonable(low), "max": jsonable(high), "mean": jsonable(mean)}
    result["histogram"] = [] if low is None else _histogram(con, value, low, high)
    return result


def _histogram(
    con: duckdb.DuckDBPyConnection, value: str, low: float, high: float
) -> list[dict[str, Any]]:
    """BINS equal-width bins from min to max (one bin when all values are equal)."""
    bins = BINS if high > low else 1
    width = (high - low) / bins if high > low else 1.0
    sql = (
        f"SELECT least(CAST(floor((v - {low!r}) / {width!r}) AS INTEGER), {bins - 1}) AS b, "
        f"count(*) FROM (SELECT {value} AS v FROM t) WHERE v IS NOT NULL GROUP BY b"
    )
    counts = dict(con.sql(sql).fetchall())
    return [
        {"low": low + i * width, "high": low + (i + 1) * width if bins > 1 else high,
         "count": counts.get(i, 0)}
        for i in range(bins)
    ]  # fmt: skip


def _top(con: duckdb.DuckDBPyConnection, name: str) -> list[dict[str, Any]]:
    sql = (
        f"SELECT {_q(name)} AS v, count(*) AS n FROM t WHERE {_q(name)} IS NOT NULL "
        f"GROUP BY v ORDER BY n DESC, v LIMIT {TOP}"
    )
    return [{"value": jsonable(v), "count": n} for v, n in con.sql(sql).fetchall()]


def _min_max(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    low, high = con.sql(f"SELECT min({name}), max({name}) FROM t").fetchall()[0]
    return {"min": jsonable(low), "max": jsonable(high)}
