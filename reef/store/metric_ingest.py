"""Metric points in: one bulk insert into `metrics` plus a fold into `run_metrics` (the per-run
summary of each key's latest, min and max that the runs table filters and sorts on).

Concurrent writers are combined (group commit): each caller queues its points, and whoever holds
the writer lock writes everything queued so far in one transaction. A DuckDB insert costs a few
milliseconds however few rows it has, so N clients logging at once cost about one insert."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from reef.store.db import Database

# A point is newer than the run's latest when it sorts after it by (ts, step), NULL steps last:
# the order of `last(value ORDER BY ts, step)` over all the run's points of that key.
_NEWER = (
    "(excluded.ts > s.ts OR (excluded.ts = s.ts AND (excluded.step IS NULL "
    "OR (s.step IS NOT NULL AND excluded.step >= s.step))))"
)
FOLD_SUMMARY = f"""
INSERT INTO run_metrics AS s
SELECT run_id, key, last(value ORDER BY ts, step), last(step ORDER BY ts, step),
       max(ts), min(value), max(value), count(*)
FROM ({{source}}) GROUP BY run_id, key
ON CONFLICT (run_id, key) DO UPDATE SET
    value = CASE WHEN {_NEWER} THEN excluded.value ELSE s.value END,
    step = CASE WHEN {_NEWER} THEN excluded.step ELSE s.step END,
    ts = CASE WHEN {_NEWER} THEN excluded.ts ELSE s.ts END,
    value_min = least(s.value_min, excluded.value_min),
    value_max = greatest(s.value_max, excluded.value_max),
    points = s.points + excluded.points
"""
SCHEMA = pa.schema(
    [
        ("run_id", pa.int64()),
        ("step_name", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
        ("step", pa.int64()),
        ("ts", pa.timestamp("us")),
    ]
)


@dataclass
class _Pending:
    table: pa.Table
    error: BaseException | None = None


class MetricIngest:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()

    def append(self, table: pa.Table) -> None:
        """Store points (a table of SCHEMA); returns once they are committed, or raises."""
        mine = _Pending(table)
        with self._lock:
            self._queue.append(mine)
        with self.db.transaction() as cur:
            with self._lock:
                taken, self._queue = self._queue, []
            if taken:
                try:
                    write(cur, pa.concat_tables([p.table for p in taken]))
                except BaseException as e:
                    for p in taken:
                        p.error = e
                    raise
        if mine.error is not None:  # another caller took our points and failed to write them
            raise mine.error


def write(cur: Any, table: pa.Table) -> None:
    """Append the points and fold them into run_metrics, inside the caller's transaction."""
    cur.register("_incoming", table)
    try:
        cur.execute("INSERT INTO metrics SELECT * FROM _incoming")
        cur.execute(FOLD_SUMMARY.format(source="SELECT * FROM _incoming"))
    finally:
        cur.unregister("_incoming")
