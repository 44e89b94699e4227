"""The prediction log: every served row, appended to one Lance dataset per model, off the
request path; and the labels (feedback) that arrive for them later, in DuckDB.

A request only puts an `Entry` on a bounded queue (a deque: no lock, no wake-up). One writer
thread turns what gathered into one Lance append per model every `flush_s` seconds (or
sooner, at `batch_rows` rows),
so a burst of requests makes a handful of Lance versions, not one per request. When the
queue is full the entry is dropped and counted: logging never slows or fails a prediction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from reef.store.db import Database, now

log = logging.getLogger("reef.predictions")
ModelKey = tuple[str, str]  # (project, model)
COMPACT_EVERY = 200  # appends to one dataset between compactions

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("at", pa.timestamp("us")),
        ("version", pa.int32()),
        ("arm", pa.string()),  # main | candidate (A/B) | shadow
        ("latency_ms", pa.float64()),
        ("inputs", pa.list_(pa.float32())),
        ("outputs", pa.list_(pa.float32())),
        ("label", pa.string()),
        ("source", pa.string()),  # api | try (the model page's try-it form: not in drift)
    ]
)
SOURCES = ("api", "try")


@dataclass(frozen=True)
class Entry:
    """One request's rows as one version of a model answered them."""

    key: ModelKey
    request_id: str
    at: datetime
    version: int
    arm: str
    latency_ms: float
    inputs: np.ndarray  # float32 (rows, features)
    outputs: np.ndarray  # (rows, outputs)
    labels: list[str] | None
    source: str = "api"


class PredictionLog:
    def __init__(
        self,
        root: Path,
        *,
        flush_s: float = 1.0,
        batch_rows: int = 5000,
        queue_size: int = 20000,
        on_flush: Callable[[list[ModelKey]], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.flush_s, self.batch_rows, self.on_flush = flush_s, batch_rows, on_flush
        self.dropped, self.queue_size = 0, queue_size
        self._pending: deque[Entry | threading.Event] = deque()
        self._rows = 0  # rows appended since the writer last drained (approximate)
        self._wake = threading.Event()
        self._closing = False
        self._appends: dict[ModelKey, int] = {}
        self._thread = threading.Thread(target=self._run, name="reef-prediction-log", daemon=True)
        self._thread.start()

    def uri(self, key: ModelKey) -> Path:
        return self.root / key[0] / f"{key[1]}.lance"

    def append(self, entry: Entry) -> bool:
        """Queue an entry for writing; False (and counted) when the queue is full. It wakes
        the writer only when `batch_rows` rows gathered: a request never hands the GIL over."""
        if len(self._pending) >= self.queue_size:
            self.dropped += 1
            return False
        self._pending.append(entry)
        self._rows += len(entry.inputs)
        if self._rows >= self.batch_rows:
            self._wake.set()
        return True

    def flush(self, timeout: float = 30) -> None:
        """Wait until everything queued before this call is written."""
        done = threading.Event()
        self._pending.append(done)
        self._wake.set()
        done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._closing = True
        self._wake.set()
        self._thread.join(30)

    def read(self, key: ModelKey, since: datetime | None, columns: list[str]) -> pa.Table:
        """Logged rows at or after `since` (all when None); an empty table when none."""
        uri = self.uri(key)
        if not (uri / "_versions").is_dir():
            return SCHEMA.empty_table().select(columns)
        where = None if since is None else f"at >= timestamp '{since:%Y-%m-%d %H:%M:%S.%f}'"
        ds = lance.dataset(str(uri))
        have = [c for c in columns if c in ds.schema.names]
        table = ds.to_table(columns=have, filter=where)
        for c in columns:  # a log written before a column existed (`source`): all null
            if c not in have:
                table = table.append_column(
                    SCHEMA.field(c), pa.nulls(table.num_rows, SCHEMA.field(c).type)
                )
        return table.select(columns)

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        """Every `flush_s` (or when woken: enough rows, a flush, closing) write what gathered,
        then release the flushes that waited for it."""
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            closing = self._closing
            items = self._drain()
            self._write_all([i for i in items if isinstance(i, Entry)])
            for waiter in (i for i in items if isinstance(i, threading.Event)):
                waiter.set()
            if closing:
                return

    def _drain(self) -> list[Entry | threading.Event]:
        items = []
        with contextlib.suppress(IndexError):
            while True:
                items.append(self._pending.popleft())
        self._rows = 0
        return items

    def _write_all(self, entries: list[Entry]) -> None:
        by_key: dict[ModelKey, list[Entry]] = {}
        for e in entries:
            by_key.setdefault(e.key, []).append(e)
        for key, group in by_key.items():
            try:
                self._write(key, group)
            except Exception:
                log.exception("could not write %d prediction log entries of %s", len(group), key)
        if by_key and self.on_flush is not None:
            try:
                self.on_flush(list(by_key))
            except Exception:
                log.exception("prediction log flush hook failed")

    def _write(self, key: ModelKey, entries: list[Entry]) -> None:
        uri = self.uri(key)
        uri.parent.mkdir(parents=True, exist_ok=True)
        exists = (uri / "_versions").is_dir()
        if exists and "source" not in lance.dataset(str(uri)).schema.names:
            lance.dataset(str(uri)).add_columns({"source": "'api'"})  # a log from before `source`
        ds = lance.write_dataset(to_table(entries), str(uri), mode="append" if exists else "create")
        self._appends[key] = self._appends.get(key, 0) + 1
        if self._appends[key] % COMPACT_EVERY == 0:
            ds.optimize.compact_files()
            ds.cleanup_old_versions(older_than=timedelta(minutes=10))


def to_table(entries: list[Entry]) -> pa.Table:
    """The log rows of some entries: one row per predicted row."""
    sizes = [len(e.inputs) for e in entries]
    index = pa.array(np.repeat(np.arange(len(entries)), sizes))

    def repeat(values: list, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(index)

    labels: list[str | None] = []
    for e in entries:
        labels.extend(e.labels or [None] * len(e.inputs))
    return pa.table(
        {
            "request_id": repeat([e.request_id for e in entries], pa.string()),
            "row": pa.array(np.concatenate([np.arange(n) for n in sizes]), pa.int32()),
            "at": repeat([e.at for e in entries], pa.timestamp("us")),
            "version": repeat([e.version for e in entries], pa.int32()),
            "arm": repeat([e.arm for e in entries], pa.string()),
            "latency_ms": repeat([e.latency_ms for e in entries], pa.float64()),
            "inputs": _lists([e.inputs for e in entries]),
            "outputs": _lists([e.outputs for e in entries]),
            "label": pa.array(labels, pa.string()),
            "source": repeat([e.source for e in entries], pa.string()),
        },
        schema=SCHEMA,
    )


def _lists(arrays: list[np.ndarray]) -> pa.Array:
    """Stack 2-D arrays (rows may differ in width between arrays) as list<float32>."""
    widths = np.concatenate([np.full(len(a), a.shape[1] if a.ndim == 2 else 1) for a in arrays])
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
    values = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()))


class Feedback:
    """Labels attached to logged predictions afterwards, by request id and row."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, model_id: int, items: list[tuple[str, int, str]], author: str) -> int:
        at = now()
        with self.db.transaction() as cur:
            for request_id, row, label in items:
                cur.execute(
                    "INSERT OR REPLACE INTO prediction_feedback VALUES (?, ?, ?, ?, ?, ?)",
                    [model_id, request_id, row, label, author, at],
                )
        return len(items)

    def table(self, model_id: int) -> pa.Table:
        """(request_id, row, truth) of every label given for the model."""
        rows = self.db.query(
            'SELECT request_id, "row", label FROM prediction_feedback WHERE model_id = ?',
            [model_id],
        )
        return pa.table(
            {
                "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
                "row": pa.array([r["row"] for r in rows], pa.int32()),
                "truth": pa.array([r["label"] for r in rows], pa.string()),
            }
        )
