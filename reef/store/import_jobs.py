"""Dataset imports that run in the background, with their progress (`DatasetStore.imports`).

An upload is streamed to disk by the request, then imported by one of a few import threads
(`workers`; more imports wait their turn, "queued") while the page (and the CLI) poll its job:
the phase, the rows read so far of the total (exact for Parquet and Arrow files, estimated from
the first MiB for text formats), and at the end the new version or the error. Jobs live in
memory: they are progress reports, the result itself is the dataset version (or nothing, when
the import failed). Finished jobs are forgotten after an hour.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from reef.errors import NotFound, ReefError

log = logging.getLogger("reef.imports")
KEEP_FINISHED_S = 3600.0


class ImportNotFound(NotFound):
    """No import job with that id in the project (or the server restarted since)."""


@dataclass
class ImportJob:
    id: int
    project: str
    dataset: str
    filename: str
    bytes_total: int
    total_rows: int | None = None
    estimated: bool = False  # total_rows is an estimate (text formats)
    rows_done: int = 0
    status: str = "queued"  # queued, running, done, failed
    phase: str = "importing"  # importing, checking, done
    error: str | None = None
    result: dict[str, Any] | None = None  # the new version, when done
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["fraction"] = self.fraction()
        return shown

    def fraction(self) -> float | None:
        if self.status == "done":
            return 1.0
        if not self.total_rows:
            return None
        return min(self.rows_done / self.total_rows, 0.99)

    def progress(self, rows: int) -> None:
        self.rows_done = rows


Work = Callable[[ImportJob], dict[str, Any]]


class ImportJobs:
    """The import jobs of this server process, run by `workers` threads."""

    def __init__(self, workers: int = 2) -> None:
        self._jobs: dict[int, ImportJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="reef-import")

    def start(self, job_for: Callable[[int], ImportJob], work: Work) -> ImportJob:
        """Register the job `job_for(new id)` and queue `work(job)`; what `work` returns is
        the job's result, a ReefError its message."""
        return self._submit(job_for, work)[0]

    def run(self, job_for: Callable[[int], ImportJob], work: Work) -> dict[str, Any]:
        """Like `start`, but wait for the job: its result, or its error raised."""
        job, future = self._submit(job_for, work)
        error = future.result()
        if error is not None:
            raise error
        return job.result or {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(
        self, job_for: Callable[[int], ImportJob], work: Work
    ) -> tuple[ImportJob, Future[ReefError | None]]:
        with self._lock:
            self._forget_old()
            job = job_for(next(self._ids))
            self._jobs[job.id] = job
        return job, self._pool.submit(self._run, job, work)

    def get(self, project: str, job_id: int) -> ImportJob:
        job = self._jobs.get(job_id)
        if job is None or job.project != project:
            raise ImportNotFound(f"no import {job_id} in project '{project}'")
        return job

    def _run(self, job: ImportJob, work: Work) -> ReefError | None:
        """Run the job; the error it ended with (None when it succeeded)."""
        job.status = "running"
        try:
            job.result = work(job)
            job.status, job.phase = "done", "done"
            return None
        except ReefError as e:
            job.status, job.error = "failed", e.message
            return e
        except Exception as e:  # the thread must record every failure
            log.exception("import %s failed", job.id)
            job.status, job.error = "failed", f"the import failed: {e}"
            return ReefError(job.error)
        finally:
            job.finished = time.time()

    def _forget_old(self) -> None:
        cutoff = time.time() - KEEP_FINISHED_S
        for job_id in [i for i, j in self._jobs.items() if j.finished and j.finished < cutoff]:
            del self._jobs[job_id]
