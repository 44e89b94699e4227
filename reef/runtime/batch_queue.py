"""The batch prediction queue: jobs asked over HTTP run one at a time, in order, in a thread
of the server (they write dataset versions, which only the server does).

Asking validates and pins the request, stores the job (`queued`) and answers at once; the
runner marks it `running`, then `done` with the dataset version it wrote, or `failed` with
why. Queued jobs survive a restart and run then. A job the server stopped in the middle of
is marked at the next start: `done` with its version when it had written and recorded one
(stopped before it was marked done), else `failed`.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from reef.errors import ReefError
from reef.runtime import batch
from reef.store.batch_jobs import BatchJobs

if TYPE_CHECKING:
    from reef.runtime.registry import ModelService

log = logging.getLogger("reef.batch")


class BatchQueue:
    def __init__(self, service: ModelService) -> None:
        self.service = service
        self.jobs = BatchJobs(service.stores.db)
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, author: str, project: str, name: str, data: Any) -> dict[str, Any]:
        """Validate (a bad request is refused here, and nothing is stored), queue, answer."""
        request = batch.prepare(self.service, project, name, data)
        model_id = self.service.model_id(project, name)
        job_id = self.jobs.create(model_id, request, author)
        target = f"model {name} batch {job_id}"
        self.service.stores.audit.record(author, "model.batch", target, project, **request)
        self._put(job_id)
        return self.jobs.get(job_id)

    def resume(self) -> None:
        """At start-up: settle the jobs a stopped server left running (done when their
        version was written, else failed), queue the waiting ones."""
        for job in self.jobs.running():
            if (written := self.jobs.written_version(job, _message(job))) is not None:
                self.jobs.finish(job["id"], _result(job["request"], written))
                log.warning("batch job %s had written its version before a restart", job["id"])
        if interrupted := self.jobs.interrupt():
            log.warning("%d batch job(s) were interrupted by a restart", interrupted)
        for job_id in self.jobs.queued():
            self._put(job_id)

    def close(self, timeout: float = 30) -> None:
        """Stop after the job that is running; queued ones wait for the next start."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._drain()
            self._queue.put(None)
            thread.join(timeout)

    def wait(self, timeout: float = 60) -> None:
        """Wait until every job queued so far has run (for tests and scripts)."""
        done = threading.Event()
        self._queue.put(done)  # type: ignore[arg-type]
        self._ensure_thread()
        done.wait(timeout)

    def _put(self, job_id: int) -> None:
        self._ensure_thread()
        self._queue.put(job_id)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reef-batch", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        """Forget the queued ids (they stay `queued` in the database)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, threading.Event):
                item.set()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
            else:
                self._execute(item)

    def _execute(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job["status"] != "queued":
            return
        self.jobs.start(job_id)
        try:
            request, author = job["request"], job["created_by"]
            result = batch.run(self.service, author, job["project"], job["model"], request)
        except ReefError as e:
            self.jobs.fail(job_id, e.message)
        except Exception as e:  # the runner must record every failure and go on
            log.exception("batch job %s failed", job_id)
            self.jobs.fail(job_id, f"internal error: {type(e).__name__}: {e}")
        else:
            self.jobs.finish(job_id, result)


def _message(job: dict[str, Any]) -> str:
    """The message `batch.run` records with the version a job writes."""
    return batch.version_message(job["model"], job["request"])


def _result(request: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """A job's result (as `batch.run` answers it) from the version it wrote."""
    return {
        "dataset": request["output"],
        "version": written["version"],
        "num_rows": written["num_rows"],
        "column": request["column"],
        "model_version": request["model_version"],
    }
