"""The metadata store: one DuckDB file, one writer under one lock (the metric fold beside it,
in a transaction of its own), a cursor per reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def fetched(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """A row a statement always returns (an aggregate, an INSERT ... RETURNING)."""
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


class Database:
    """Serialises writes through one connection; reads each get their own cursor."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(path))
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query as dicts."""
        cur = self._con.cursor()
        try:
            cur.execute(sql, list(params))
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return next(iter(row.values())) if row else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one write statement under the writer lock; returns its rows (for RETURNING)."""
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.execute(sql, list(params))
                return cur.fetchall() if cur.description else []
            finally:
                cur.close()

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the writer lock across several transactions (it is re-entrant)."""
        with self._lock:
            yield

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction: everything inside commits together or not at all."""
        with self._lock, self.side_transaction() as cur:
            yield cur

    @contextmanager
    def side_transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on a cursor of its own, outside the writer lock, for a writer
        that alone writes its table (the metric fold, run_metrics): DuckDB commits it beside
        the writer's transactions, so neither waits for the other. Rows that another
        transaction changed too would fail its commit rather than be overwritten."""
        cur = self._con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
        finally:
            cur.close()

    def insert_arrow(self, table: str, data: Any) -> None:
        """Bulk insert of an Arrow table whose columns match `table`'s, in order."""
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.register("_incoming", data)
                cur.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                cur.unregister("_incoming")
            finally:
                cur.close()

    def migrate(self, migrations: Sequence[tuple[str, str]]) -> list[str]:
        """Apply the named migrations not yet recorded, in order; returns the names applied."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
        )
        done = {r["name"] for r in self.query("SELECT name FROM migrations")}
        applied = []
        for name, sql in migrations:
            if name in done:
                continue
            with self.transaction() as cur:
                cur.execute(sql)
                cur.execute("INSERT INTO migrations VALUES (?, ?)", [name, now()])
            applied.append(name)
        return applied
