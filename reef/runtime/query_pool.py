"""The query pool: user SQL (queries and exports) runs in a few threads of its own, never in
the threads that serve other requests, with a cap on how many one person may run at once.

A query that finds the pool full, or its person at their cap, is refused at once with 429
(`Busy`) rather than queued: a queue would only hold a request open for a slot that a
never-ending query keeps. Each query also has a time limit (`dataset_query.deadline`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from reef.errors import Busy

T = TypeVar("T")


class QueryPool:
    """`workers` threads; at most `per_person` of them for one person."""

    def __init__(self, workers: int, per_person: int) -> None:
        self.workers, self.per_person = max(1, workers), max(1, per_person)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="reef-query")
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    def submit(self, who: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` in the pool for `who`; Busy (429) when there is no room."""
        self._admit(who)
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(who)
            raise
        future.add_done_callback(lambda _: self._release(who))
        return future

    async def run(self, who: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` run in the pool, awaited."""
        return await asyncio.wrap_future(self.submit(who, fn, *args))

    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self, who: str) -> None:
        with self._lock:
            total, mine = sum(self._running.values()), self._running.get(who, 0)
            if mine >= self.per_person:
                raise Busy(
                    f"you are already running {mine} queries, the most one person may run "
                    "at once; wait for one to finish"
                )
            if total >= self.workers:
                raise Busy(
                    f"the server is already running {total} queries (its limit); "
                    "try again when one has finished"
                )
            self._running[who] = mine + 1

    def _release(self, who: str) -> None:
        with self._lock:
            left = self._running.get(who, 0) - 1
            if left > 0:
                self._running[who] = left
            else:
                self._running.pop(who, None)
