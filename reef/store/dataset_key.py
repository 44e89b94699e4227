"""A dataset's key: a column that names each row, so that reef can tell a changed row from a
new one when a new export is uploaded (see `dataset_replace`).

A key must be unique and never empty. `suggest_key` proposes one at upload: the first column
that is, preferring names like `id`, `customer_id`, `key` or `code`; the person confirms it.
The checks run in DuckDB (one scan for all candidate columns), never a Python loop per row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import lance
import pyarrow as pa

from reef.errors import InvalidInput

_PREFERRED = re.compile(r"^(id|key|code)$|[_ -](id|key|code)$|^(id|key|code)[_ -]", re.I)
REEF_DIR = "_reef"  # reef's own files inside a dataset's directory
_MAX_CANDIDATES = 16  # columns checked for a suggestion (one scan)


def suggest_key(ds: lance.LanceDataset) -> str | None:
    """A column that could be the key (unique, never empty, whole numbers or text), or None."""
    candidates = sorted(
        (f.name for f in ds.schema if _keyable(f.type)),
        key=lambda name: not _PREFERRED.search(name),
    )[:_MAX_CANDIDATES]
    if not candidates or ds.count_rows() < 2:
        return None
    found = _uniques(ds, candidates)
    return next((name for name, ok in zip(candidates, found, strict=True) if ok), None)


def check_key_values(data: lance.LanceDataset | pa.RecordBatchReader, column: str) -> None:
    """InvalidInput naming `column` when it has empty or repeated values in `data`."""
    with duckdb.connect(":memory:", config={"threads": 2}) as con:
        con.register("t", data)
        check_key_column(con, "t", column)


def check_key_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """InvalidInput naming `column` when it has empty or repeated values in `table`."""
    quoted = _quoted(column)
    empty, repeated = con.sql(
        f"SELECT count(*) - count({quoted}), count({quoted}) - count(DISTINCT {quoted}) "
        f"FROM {table}"
    ).fetchall()[0]
    if empty:
        raise InvalidInput(f"column {column!r} cannot be the key: it is empty in {empty} rows")
    if repeated:
        raise InvalidInput(
            f"column {column!r} cannot be the key: its values repeat ({repeated} rows)"
        )


def read_key(uri: Path) -> str | None:
    """The key declared for the dataset at `uri`, kept beside its Lance files."""
    path = _key_file(uri)
    return json.loads(path.read_text())["key"] if path.is_file() else None


def write_key(uri: Path, column: str | None) -> None:
    path = _key_file(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": column}))
    tmp.replace(path)


def _key_file(uri: Path) -> Path:
    return uri / REEF_DIR / "key.json"


def _uniques(ds: lance.LanceDataset, columns: list[str]) -> list[bool]:
    tests = [
        f"count(DISTINCT {_quoted(c)}) = count(*) AND count({_quoted(c)}) = count(*)"
        for c in columns
    ]
    with duckdb.connect(":memory:", config={"threads": 2}) as con:
        con.register("t", ds)
        return [bool(v) for v in con.sql(f"SELECT {', '.join(tests)} FROM t").fetchall()[0]]


def _keyable(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
