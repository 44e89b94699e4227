"""Streamed downloads: a writer (CSV or Parquet, into a file object) runs in its own thread and
the response sends what it writes as it comes, so no result is held in memory or on disk.

The response starts only once the writer has produced its first bytes (or finished, or
failed): a query that does not run is still a clear 400, not a broken download.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from litestar.response import Stream

from reef.errors import InvalidInput
from reef.store.dataset_query import check_export_format

log = logging.getLogger("reef.server")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
CHUNK = 1 << 20
_DONE = object()
_PUT_TIMEOUT_S = 1.0


class _Cancelled(Exception):
    """The client went away: stop writing."""


class _Pipe(io.RawIOBase):
    """A write-only file whose writes, gathered into chunks, go into a bounded queue."""

    def __init__(self, chunks: queue.Queue, cancelled: threading.Event) -> None:
        self.chunks, self.cancelled = chunks, cancelled
        self.buffer, self.position = bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buffer += data
        self.position += len(data)
        if len(self.buffer) >= CHUNK:
            self.flush_chunk()
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush_chunk(self) -> None:
        if self.buffer:
            put(self.chunks, bytes(self.buffer), self.cancelled)
            self.buffer = bytearray()


def put(chunks: queue.Queue, item: object, cancelled: threading.Event) -> None:
    while True:
        if cancelled.is_set():
            raise _Cancelled
        try:
            chunks.put(item, timeout=_PUT_TIMEOUT_S)
            return
        except queue.Full:
            continue


def _produce(
    write: Callable[[BinaryIO], int], chunks: queue.Queue, cancelled: threading.Event
) -> None:
    pipe = _Pipe(chunks, cancelled)
    try:
        write(pipe)  # type: ignore[arg-type]
        pipe.flush_chunk()
        put(chunks, _DONE, cancelled)
    except _Cancelled:
        return
    except Exception as e:  # handed to the response, which reports it
        try:
            put(chunks, e, cancelled)
        except _Cancelled:
            return


def _chunks(first: object, chunks: queue.Queue, cancelled: threading.Event) -> Iterator[bytes]:
    try:
        item = first
        while item is not _DONE:
            if isinstance(item, Exception):  # abort the response: a cut file must not look whole
                log.error("download stopped: %s", item)
                raise RuntimeError(f"the download stopped: {item}") from item
            yield item  # type: ignore[misc]
            item = chunks.get()
    finally:
        cancelled.set()


def export_stream(write: Callable[[BinaryIO], int], fmt: str, stem: str) -> Stream:
    """A streamed response of what `write(file)` writes, as `stem.csv` or `stem.parquet`."""
    check_export_format(fmt)
    chunks: queue.Queue = queue.Queue(maxsize=8)
    cancelled = threading.Event()
    threading.Thread(target=_produce, args=(write, chunks, cancelled), daemon=True).start()
    first = chunks.get()
    if isinstance(first, Exception):
        cancelled.set()
        if isinstance(first, InvalidInput):
            raise first
        raise InvalidInput(f"the download failed: {first}") from first
    return Stream(
        _chunks(first, chunks, cancelled),
        media_type=MEDIA_TYPES[fmt],
        headers={  # explicit: a handler's own media type would win over the Stream's
            "content-type": MEDIA_TYPES[fmt],
            "content-disposition": f'attachment; filename="{stem}.{fmt}"',
        },
    )
