"""The step queue: Huey on a SQLite file, consumed by threads inside `reef serve`; or Huey on
Redis, shared by the server and `reef worker`s on other boxes (both register the task
`execute_step`, each with its own function)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import Huey, PriorityRedisHuey, SqliteHuey
from huey.consumer import Consumer, Worker

from reef.errors import ReefError

log = logging.getLogger("reef.queue")


# With nothing queued, a worker of the server's own SQLite queue waits this long before it
# looks again unless the server queues something first (it wakes at once then); Huey's own
# loop polls ten times a second, which kept an idle server at ~1 CPU-second a minute.
IDLE_POLL_S = 2.0


class LocalHuey(SqliteHuey):
    """Huey on the server's SQLite file, which only this process writes: every enqueue (a
    new step, or a delayed one the scheduler finds due) wakes the sleeping workers once the
    task is stored (Huey's ENQUEUED signal fires before that, too early to wake a worker)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake = threading.Event()
        self._wake_lock = threading.Lock()
        self._stopping = False

    def enqueue(self, task: Any) -> Any:
        result = super().enqueue(task)
        self._wake.set()
        return result

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until a task is queued, the queue stops, or `timeout` passes. A worker that
        wakes clears the event before it looks at the queue again, so a task queued
        meanwhile is found by that look or wakes the next sleep. Once stopping, the event
        stays set, so no worker can go back to sleep."""
        if self._wake.wait(timeout):
            with self._wake_lock:
                if not self._stopping:
                    self._wake.clear()

    def stop_waiting(self) -> None:
        with self._wake_lock:
            self._stopping = True
            self._wake.set()


class WakingWorker(Worker):
    """Sleeps until the server queues a task (or IDLE_POLL_S passes) when the queue is
    empty, instead of polling it."""

    def sleep(self) -> None:
        if isinstance(self.huey, LocalHuey):
            self.huey.wait_for_work(IDLE_POLL_S)
        else:  # Redis: the dequeue itself blocks (BZPOPMIN); this only backs off an error
            super().sleep()


class QuietConsumer(Consumer):
    """A consumer that leaves SIGINT/SIGTERM to the server (Huey's handlers need the main
    thread and would swallow the server's Ctrl-C), and whose workers sleep until woken."""

    worker_class = WakingWorker

    def _set_signal_handlers(self) -> None:
        pass

    def stop(self, graceful: bool = False) -> None:
        self.stop_flag.set()
        if isinstance(self.huey, LocalHuey):  # sleeping workers see the stop flag now
            self.huey.stop_waiting()
        super().stop(graceful)


class QueueUnavailable(ReefError):
    """The queue URL is malformed or its Redis server does not answer."""


def open_huey(url: str, path: Path) -> Huey:
    """`sqlite` (the file at `path`) or a `redis://HOST:PORT/DB` URL, checked by a ping.
    Priority storage on both, so a run's priority orders steps on either backend."""
    if url == "sqlite":
        path.parent.mkdir(parents=True, exist_ok=True)
        return LocalHuey("reef", filename=str(path), results=False)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise QueueUnavailable(f"--queue must be 'sqlite' or a redis:// URL; got {url!r}")
    import redis  # only when a Redis queue is used

    try:
        huey = PriorityRedisHuey("reef", url=url, results=False)
        huey.storage.conn.ping()
    except (redis.RedisError, ValueError) as e:
        raise QueueUnavailable(f"cannot reach the queue at {url}: {e}") from None
    return huey


def check_queue(url: str) -> None:
    """Raise QueueUnavailable unless the queue at `url` answers (a Redis URL only)."""
    if url != "sqlite":
        open_huey(url, Path()).storage.close()


class StepQueue:
    """Enqueues step ids; a consumer thread calls `execute(step_id)` for each."""

    def __init__(
        self, path: Path, workers: int, execute: Callable[[int], None], url: str = "sqlite"
    ) -> None:
        self.huey = open_huey(url, path)

        def execute_step(step_id: int) -> None:
            execute(step_id)

        # Huey names a task by its function's module too: defined here, the task is called
        # the same in `reef serve` and in `reef worker`, whose functions differ
        self._task = self.huey.task(name="execute_step")(execute_step)
        self._workers = workers
        self._consumer: Consumer | None = None

    def enqueue(self, step_id: int, delay: float = 0, priority: int = 0) -> str:
        """Queue a step (after `delay` seconds); returns the task id (for revoking it).
        Consumers take higher `priority` first; equal priorities in the order queued."""
        if delay:
            task_id = uuid.uuid4().hex
            self._task.schedule(args=(step_id,), delay=delay, id=task_id, priority=priority)
            return task_id
        task = self._task.s(step_id, priority=priority)
        self.huey.enqueue(task)
        return task.id

    def revoke(self, task_id: str) -> None:
        self.huey.revoke_by_id(task_id)

    def flush(self) -> None:
        """Drop every queued task (on start-up, before re-enqueueing from the metadata store)."""
        self.huey.flush()

    def pending(self) -> int:
        return self.huey.pending_count()

    def start(self) -> None:
        if self._workers < 1:  # a server that leaves every step to remote workers
            return
        self._consumer = QuietConsumer(
            self.huey,
            workers=self._workers,
            periodic=False,
            initial_delay=0.02,
            backoff=1.15,
            max_delay=0.1,
            check_worker_health=False,
        )
        self._consumer.start()

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
        self.huey.storage.close()
