"""The step queue: Huey on a SQLite file, consumed by threads inside `reef serve`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

from huey import SqliteHuey
from huey.consumer import Consumer

log = logging.getLogger("reef.queue")


class QuietConsumer(Consumer):
    """A consumer that leaves SIGINT/SIGTERM to the server (Huey's handlers need the main
    thread and would swallow the server's Ctrl-C)."""

    def _set_signal_handlers(self) -> None:
        pass


class StepQueue:
    """Enqueues step ids; a consumer thread calls `execute(step_id)` for each."""

    def __init__(self, path: Path, workers: int, execute: Callable[[int], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.huey = SqliteHuey("reef", filename=str(path), results=False)
        self._task = self.huey.task(name="execute_step")(execute)
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
        self._task.revoke_by_id(task_id)

    def flush(self) -> None:
        """Drop every queued task (on start-up, before re-enqueueing from the metadata store)."""
        self.huey.flush()

    def pending(self) -> int:
        return self.huey.pending_count()

    def start(self) -> None:
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
