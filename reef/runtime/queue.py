"""The step queue: Huey on a SQLite file, consumed by threads inside `reef serve`; or Huey on
Redis, shared by the server and `reef worker`s on other boxes (both register the task
`execute_step`, each with its own function)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

from huey import Huey, PriorityRedisHuey, SqliteHuey
from huey.consumer import Consumer

from reef.errors import ReefError

log = logging.getLogger("reef.queue")


class QuietConsumer(Consumer):
    """A consumer that leaves SIGINT/SIGTERM to the server (Huey's handlers need the main
    thread and would swallow the server's Ctrl-C)."""

    def _set_signal_handlers(self) -> None:
        pass


class QueueUnavailable(ReefError):
    """The queue URL is malformed or its Redis server does not answer."""


def open_huey(url: str, path: Path) -> Huey:
    """`sqlite` (the file at `path`) or a `redis://HOST:PORT/DB` URL, checked by a ping.
    Priority storage on both, so a run's priority orders steps on either backend."""
    if url == "sqlite":
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("reef", filename=str(path), results=False)
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
