"""Streamed downloads: a writer (CSV or Parquet, into a file object) runs in the query pool
and the response sends what it writes as it comes, so no result is held in memory or on disk.

The response starts only once the writer has produced its first bytes (or finished, or
failed): a query that does not run, or that runs out of time before its first row, is still
a clear 4xx, not a broken download. The time limit covers the whole download, including the
time spent waiting on a slow reader: a writer past it stops, and the response is cut short.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO

from litestar.response import Stream

from reef.errors import InvalidInput, ReefError
from reef.runtime.query_pool import QueryPool
from reef.server.disposition import attachment
from reef.store.dataset_query import QueryTimeout, check_export_format

log = logging.getLogger("reef.server")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
CHUNK = 1 << 20
_DONE = object()
_POLL_S = 0.5


class _Cancelled(Exception):
    """The client went away: stop writing."""


class _Feed:
    """The hand-over from the writer's thread to the response: a bounded asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop, self.timeout_s = loop, timeout_s
        self.chunks: asyncio.Queue = asyncio.Queue(maxsize=8)
        self.cancelled = threading.Event()
        self.deadline = time.monotonic() + timeout_s

    def put(self, item: object, timed: bool = True) -> None:
        """Hand `item` over, waiting while the queue is full (a slow reader), until the
        client leaves or (when `timed`) the time limit passes."""
        future = asyncio.run_coroutine_threadsafe(self.chunks.put(item), self.loop)
        while True:
            try:
                future.result(timeout=_POLL_S)
                return
            except concurrent.futures.TimeoutError:
                if self.cancelled.is_set():
                    future.cancel()
                    raise _Cancelled from None
                if timed and time.monotonic() > self.deadline:
                    future.cancel()
                    raise QueryTimeout(self.timeout_s) from None


class _Pipe(io.RawIOBase):
    """A write-only file whose writes, gathered into chunks, go to the feed."""

    def __init__(self, feed: _Feed) -> None:
        self.feed = feed
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
            self.feed.put(bytes(self.buffer))
            self.buffer = bytearray()


def _produce(write: Callable[[BinaryIO], int], feed: _Feed) -> None:
    pipe = _Pipe(feed)
    try:
        write(pipe)  # type: ignore[arg-type]
        pipe.flush_chunk()
        feed.put(_DONE)
    except _Cancelled:
        return
    except Exception as e:  # handed to the response, which reports it
        try:
            feed.put(e, timed=False)
        except _Cancelled:
            return


async def _chunks(first: object, feed: _Feed) -> AsyncIterator[bytes]:
    try:
        item = first
        while item is not _DONE:
            if isinstance(item, Exception):  # abort the response: a cut file must not look whole
                log.error("download stopped: %s", item)
                raise RuntimeError(f"the download stopped: {item}") from item
            yield item  # type: ignore[misc]
            item = await feed.chunks.get()
    finally:
        feed.cancelled.set()


async def export_stream(
    write: Callable[[BinaryIO], int],
    fmt: str,
    stem: str,
    pool: QueryPool,
    who: str,
    timeout_s: float,
) -> Stream:
    """A streamed response of what `write(file)` writes, as `stem.csv` or `stem.parquet`,
    written in `pool` for `who` (Busy when it is full) within `timeout_s` seconds."""
    check_export_format(fmt)
    feed = _Feed(asyncio.get_running_loop(), timeout_s)
    pool.submit(who, _produce, write, feed)
    try:
        first = await feed.chunks.get()
    except BaseException:  # the client left before the first bytes
        feed.cancelled.set()
        raise
    if isinstance(first, Exception):
        feed.cancelled.set()
        if isinstance(first, ReefError):
            raise first
        raise InvalidInput(f"the download failed: {first}") from first
    return Stream(
        _chunks(first, feed),
        media_type=MEDIA_TYPES[fmt],
        headers={  # explicit: a handler's own media type would win over the Stream's
            "content-type": MEDIA_TYPES[fmt],
            "content-disposition": attachment(f"{stem}.{fmt}"),
        },
    )
