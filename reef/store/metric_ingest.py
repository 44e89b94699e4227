"""Metric points in: a bulk insert into `metrics`, and a fold into `run_metrics` (the summary
of each (run, step, key)'s latest, min, max and count that the runs table filters and sorts
on). Metrics belong to steps: two steps of one run logging `accuracy` keep two series.

Concurrent writers are combined (group commit): each caller queues its points, and whoever holds
the writer lock writes everything queued so far in one transaction. A caller returns once its
points are committed. DuckDB charges a few milliseconds per statement however few rows it
touches, and the fold (an aggregate and an upsert) is the dearer half, so it is not done per
request: committed points wait in memory and are folded together once a second, and at once
before anything reads the summary (`settle`). A crash can only lose that wait, and `reconcile`
repairs it at start-up from the points themselves.

The fold does not hold the writer lock: only the fold writes run_metrics (points committed
another way, such as a cached step's copy, are handed to it: `committed`), so it runs in a
transaction of its own beside the other writers (DuckDB lets transactions that touch different
rows commit side by side) and one fold lock keeps folds in order. A batch of points, or any
other write, never waits for a fold, and a read that settles waits only for the fold."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reef.errors import InvalidInput
from reef.store.db import Database

log = logging.getLogger("reef.metrics")
FOLD_EVERY_S = 1.0

# A point is newer than the run's latest when it sorts after it by (ts, step), NULL steps last:
# the order of `last(value ORDER BY ts, step)` over all the run's points of that key.
_NEWER = (
    "(excluded.ts > s.ts OR (excluded.ts = s.ts AND (excluded.step IS NULL "
    "OR (s.step IS NOT NULL AND excluded.step >= s.step))))"
)
# Each (step, key)'s summary (a run_metrics row) over the points of `source`, a query; `shared`
# starts false and MARK_SHARED sets it.
SUMMARY_OF = """
SELECT run_id, step_name, key, last(value ORDER BY ts, step), last(step ORDER BY ts, step),
       max(ts), min(value), max(value), count(*), false
FROM ({source}) GROUP BY run_id, step_name, key
"""
# `shared`: another step of the run logs the same key, so pages name it STEP/KEY. Kept here
# rather than worked out per read: the runs table then filters on plain equalities. A row
# never stops being shared (points are not deleted), so only (run, key)s in `source` change.
MARK_SHARED = """
UPDATE run_metrics AS m SET shared = true FROM (
    SELECT s.run_id, s.key FROM run_metrics s SEMI JOIN ({source}) i USING (run_id, key)
    GROUP BY s.run_id, s.key HAVING count(*) > 1
) d WHERE m.run_id = d.run_id AND m.key = d.key AND NOT m.shared
"""
FOLD_SUMMARY = f"""
INSERT INTO run_metrics AS s {SUMMARY_OF.format(source="{source}")}
ON CONFLICT (run_id, step_name, key) DO UPDATE SET
    value = CASE WHEN {_NEWER} THEN excluded.value ELSE s.value END,
    step = CASE WHEN {_NEWER} THEN excluded.step ELSE s.step END,
    ts = CASE WHEN {_NEWER} THEN excluded.ts ELSE s.ts END,
    value_min = least(s.value_min, excluded.value_min),
    value_max = greatest(s.value_max, excluded.value_max),
    points = s.points + excluded.points
"""
# Runs whose summary does not count the points they have: those a crash caught unfolded.
UNFOLDED_RUNS = """
SELECT DISTINCT run_id FROM (
    (SELECT run_id, step_name, key, count(*) AS points FROM metrics
     GROUP BY run_id, step_name, key
     EXCEPT SELECT run_id, step_name, key, points FROM run_metrics)
    UNION ALL
    (SELECT run_id, step_name, key, points FROM run_metrics
     EXCEPT SELECT run_id, step_name, key, count(*) FROM metrics GROUP BY run_id, step_name, key)
)
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


COLUMNS = ("key", "value", "step", "ts")
# A point's time is seconds since the epoch (UTC), as the SDK's clock read it; before 2000 or
# after 2200 it is a unit mistake (milliseconds, say), not a time.
TS_RANGE = (946_684_800.0, 7_258_118_400.0)
_NUMBER = (pa.int64(), pa.float64(), pa.null())


def rows_as_columns(points: list) -> dict[str, list]:
    """Points as rows ({key, value, step?, ts?} each) to the columns `points_table` takes;
    refuses the whole batch, naming the first bad point."""
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    for i, p in enumerate(points):
        if not isinstance(p, dict) or not isinstance(p.get("key"), str):
            raise InvalidInput(f"point {i} needs a string 'key'")
        for name, kinds, what in (
            ("value", (int, float), "a number"),
            ("step", (int,), "an integer"),
            ("ts", (int, float), "seconds since the epoch"),
        ):
            v = p.get(name)
            if v is not None and (not isinstance(v, kinds) or isinstance(v, bool)):
                raise InvalidInput(f"point {i} ('{p['key']}'): {name} must be {what}")
            columns[name].append(v)
        columns["key"].append(p["key"])
    return columns


def points_table(
    run_id: int, step_name: str, columns: Mapping[str, Any], stamp: datetime
) -> pa.Table:
    """Columns {key: [str], value: [number|null], step?: [int|null], ts?: [seconds|null]} as a
    table of SCHEMA; a point without a time gets `stamp`. Refuses the batch with what was
    wrong."""
    if not isinstance(columns, Mapping) or not isinstance(columns.get("key"), list):
        raise InvalidInput("'columns' must be an object of lists: key, value, step?, ts?")
    if unknown := sorted(set(columns) - set(COLUMNS)):
        raise InvalidInput(f"unknown metric columns {unknown}: use {list(COLUMNS)}")
    n = len(columns["key"])
    for name in COLUMNS[1:]:
        col = columns.get(name)
        if (col is not None or name == "value") and (not isinstance(col, list) or len(col) != n):
            raise InvalidInput(f"columns.{name} must be a list as long as columns.key ({n})")
    key = _column(columns, "key", (pa.string(),), "strings")
    if key.null_count:
        raise InvalidInput("columns.key: every point needs a key")
    value = _column(columns, "value", _NUMBER, "numbers or null").cast(pa.float64())
    step = _column(columns, "step", (pa.int64(), pa.null()), "integers or null")
    ts = _column(columns, "ts", _NUMBER, "seconds since the epoch or null").cast(pa.float64())
    low, high = pc.min_max(ts).values()
    if low.is_valid and (low.as_py() < TS_RANGE[0] or high.as_py() > TS_RANGE[1]):
        raise InvalidInput("columns.ts: times are seconds since the epoch (years 2000 to 2200)")
    micros = pc.round(pc.multiply(ts, 1e6)).cast(pa.int64()).cast(pa.timestamp("us"))
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(run_id, pa.int64()), n),
            pa.repeat(pa.scalar(step_name, pa.string()), n),
            key.cast(pa.string()),
            value,
            step.cast(pa.int64()),
            micros.fill_null(pa.scalar(stamp, pa.timestamp("us"))),
        ],
        schema=SCHEMA,
    )


def _column(columns: Mapping[str, Any], name: str, types: tuple, what: str) -> pa.Array:
    values = columns.get(name)
    if values is None:
        return pa.nulls(len(columns["key"]))
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
        raise InvalidInput(f"columns.{name} must hold {what}: {e}") from None
    if array.type not in types:
        raise InvalidInput(f"columns.{name} must hold {what}, not {array.type}")
    return array


@dataclass
class _Pending:
    table: pa.Table
    error: BaseException | None = None


class MetricIngest:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()  # guards _queue and _unfolded
        self._unfolded: list[pa.Table] = []  # committed, not yet in run_metrics
        self._folding = threading.Lock()  # one fold at a time; not the writer lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, table: pa.Table) -> None:
        """Store points (a table of SCHEMA); returns once they are committed, or raises."""
        mine = _Pending(table)
        with self._lock:
            self._queue.append(mine)
        with self.db.writer():
            with self._lock:
                taken, self._queue = self._queue, []
            if taken:
                batch = pa.concat_tables([p.table for p in taken])
                try:
                    with self.db.transaction() as cur:
                        insert(cur, batch)
                except BaseException as e:
                    for p in taken:
                        p.error = e
                    raise
                with self._lock:  # before the caller returns: a settle after that folds it
                    self._unfolded.append(batch)
        if mine.error is not None:  # another caller took our points and failed to write them
            raise mine.error

    def committed(self, table: pa.Table) -> None:
        """Points (a table of SCHEMA) the caller has itself committed to `metrics` (a cached
        step's copied points): to be summarised by the next fold, as appended ones are."""
        if table.num_rows:
            with self._lock:
                self._unfolded.append(table)

    def settle(self) -> None:
        """Fold every committed point into run_metrics: call before reading the summary.
        Always under the fold lock, even with nothing left to fold here: the background
        fold may have taken the points and still be writing them (it holds that lock), and a
        read right after an early return would miss them. Not under the writer lock: the
        fold's transaction runs beside the writers' (see the module's notes)."""
        with self._folding:
            with self._lock:
                taken, self._unfolded = self._unfolded, []
            if not taken:
                return
            try:
                with self.db.side_transaction() as cur:
                    fold(cur, pa.concat_tables(taken))
            except BaseException:
                with self._lock:
                    self._unfolded[:0] = taken
                raise

    def reconcile(self) -> list[int]:
        """Summarise again, from their points, the runs whose summary missed some (a crash
        between a commit and its fold); returns their ids."""
        with self._folding, self.db.writer():
            runs = [r["run_id"] for r in self.db.query(UNFOLDED_RUNS)]
            if runs:
                marks = ",".join("?" * len(runs))
                with self.db.transaction() as cur:
                    cur.execute(f"DELETE FROM run_metrics WHERE run_id IN ({marks})", runs)
                    points = f"SELECT * FROM metrics WHERE run_id IN ({marks})"
                    cur.execute(f"INSERT INTO run_metrics {SUMMARY_OF.format(source=points)}", runs)
                    keys = f"SELECT run_id, key FROM run_metrics WHERE run_id IN ({marks})"
                    cur.execute(MARK_SHARED.format(source=keys), runs)
        return runs

    def start(self) -> None:
        """Fold in the background, once a second."""
        self._thread = threading.Thread(target=self._loop, name="reef-metric-fold", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.settle()

    def _loop(self) -> None:
        while not self._stop.wait(FOLD_EVERY_S):
            try:
                self.settle()
            except Exception:  # kept for the next fold, or a read's, or reconcile at start
                log.exception("folding metric points into run_metrics failed")


def insert(cur: Any, table: pa.Table) -> None:
    """Append points to `metrics`, inside the caller's transaction."""
    _from_incoming(cur, table, "INSERT INTO metrics SELECT * FROM _incoming")


def fold(cur: Any, table: pa.Table) -> None:
    """Fold points (already in `metrics`) into run_metrics, inside the caller's transaction."""
    _from_incoming(cur, table, FOLD_SUMMARY.format(source="SELECT * FROM _incoming"))
    _from_incoming(cur, table, MARK_SHARED.format(source="SELECT run_id, key FROM _incoming"))


def _from_incoming(cur: Any, table: pa.Table, sql: str) -> None:
    cur.register("_incoming", table)
    try:
        cur.execute(sql)
    finally:
        cur.unregister("_incoming")
