"""Read-only SQL over dataset versions: DuckDB over Lance, in a sandboxed connection.

Every query gets a fresh in-memory DuckDB connection with the datasets registered under their
names, then `enable_external_access = false` (no file, network, ATTACH, COPY, INSTALL or
LOAD, not even inside a SELECT: `read_csv('/etc/passwd')` is a permission error), no Python
replacement scans (a name in the query can never reach a Python variable) and the
configuration locked so the query cannot undo any of it. Only a single SELECT (or WITH ...
SELECT) statement is accepted, as classified by DuckDB's own parser. A timer interrupts the
connection when the time limit passes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from reef.errors import InvalidInput
from reef.store.dataset_values import table_rows

EXPORT_FORMATS = ("csv", "parquet")
_BATCH_ROWS = 64 * 1024
_SETTINGS = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET python_enable_replacements = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def sandbox(
    tables: dict[str, object], memory_limit: str = "2GB", threads: int = 2
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection that sees `tables` (Lance datasets, Arrow tables or
    readers, registered under their names) and nothing else. `threads` bounds the cores one
    query may keep busy, so a few heavy ones leave CPU for everything else."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "threads": threads,
    }
    con = duckdb.connect(":memory:", config=config)
    for name, data in tables.items():
        con.register(name, data)
    for statement in _SETTINGS:
        con.execute(statement)
    return con


@contextmanager
def deadline(con: duckdb.DuckDBPyConnection, timeout_s: float) -> Iterator[None]:
    """Interrupt `con` after `timeout_s` seconds; DuckDB errors become InvalidInput.

    An interrupt while a result streams surfaces as whatever the reader raises (pyarrow's
    OSError), so any error after the timer fired is reported as the time limit."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        if fired.is_set() or isinstance(exc, duckdb.InterruptException):
            raise QueryTimeout(timeout_s) from exc
        if isinstance(exc, duckdb.Error):
            raise InvalidInput(f"invalid query: {exc}") from exc
        raise
    finally:
        timer.cancel()


class QueryTimeout(InvalidInput):
    """A query (or an export) ran past its time limit and was stopped."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the query ran longer than {timeout_s:g} s (its time limit) and was stopped"
        )


def select_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The one SELECT statement in `sql`; InvalidInput for anything else."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInput(f"invalid query: {exc}") from exc
    if len(statements) != 1:
        raise InvalidInput(f"send exactly one SELECT statement, not {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name
        raise InvalidInput(f"only SELECT queries are allowed (this is a {kind} statement)")
    return statement.query


def run_query(
    tables: dict[str, object], sql: str, limit: int, timeout_s: float
) -> tuple[list[str], list[list[object]], bool]:
    """(column names, at most `limit` rows, whether more rows were left out)."""
    if limit < 1:
        raise InvalidInput("limit must be 1 or more")
    con = sandbox(tables)
    try:
        query = select_statement(con, sql)
        with deadline(con, timeout_s):
            table = con.sql(query).limit(limit + 1).to_arrow_table()
    finally:
        con.close()
    truncated = table.num_rows > limit
    table = table.slice(0, limit)
    return table.column_names, table_rows(table), truncated


def export_query(
    tables: dict[str, object], sql: str, fmt: str, dest: BinaryIO, timeout_s: float
) -> int:
    """Stream the result of `sql` into `dest` as CSV or Parquet; the number of rows."""
    check_export_format(fmt)
    con = sandbox(tables)
    try:
        query = select_statement(con, sql)
        with deadline(con, timeout_s):
            reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
            return write_stream(reader, fmt, dest)
    finally:
        con.close()


def check_export_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unsupported export format {fmt!r}: use csv or parquet")


def write_stream(reader: pa.RecordBatchReader, fmt: str, dest: BinaryIO) -> int:
    """Write every batch of `reader` to `dest` as CSV or Parquet; the number of rows."""
    check_export_format(fmt)
    rows = 0
    if fmt == "csv":
        with pcsv.CSVWriter(dest, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    with pq.ParquetWriter(dest, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows
