"""Batch prediction jobs: what was asked, where each stands, and the dataset version it wrote.

A job is `queued` when asked, `running` while the server scores it, then `done` (with its
`result`) or `failed` (with its `error`). The runner is `runtime.batch_queue`.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from reef.errors import NotFound
from reef.store.db import Database, now

SELECT = (
    "SELECT j.id, p.name AS project, m.name AS model, j.model_id, j.request, j.status, "
    "j.created_by, j.created_at, j.started_at, j.finished_at, j.result, j.error "
    "FROM batch_jobs j JOIN models m ON m.id = j.model_id JOIN projects p ON p.id = m.project_id"
)


class BatchJobNotFound(NotFound):
    pass


class BatchJobs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, model_id: int, request: dict[str, Any], author: str) -> int:
        rows = self.db.execute(
            "INSERT INTO batch_jobs (model_id, request, status, created_by, created_at) "
            "VALUES (?, ?, 'queued', ?, ?) RETURNING id",
            [model_id, json.dumps(request), author, now()],
        )
        return int(rows[0][0])

    def get(self, job_id: int, model_id: int | None = None) -> dict[str, Any]:
        """A job (of model `model_id`, when given)."""
        row = self.db.one(f"{SELECT} WHERE j.id = ?", [job_id])
        if row is None or (model_id is not None and row["model_id"] != model_id):
            raise BatchJobNotFound(f"no batch job {job_id} for this model")
        return _decoded(row)

    def list(self, model_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """The model's latest jobs, newest first."""
        rows = self.db.query(
            f"{SELECT} WHERE j.model_id = ? ORDER BY j.id DESC LIMIT ?",
            [model_id, limit],
        )
        return [_decoded(r) for r in rows]

    def queued(self) -> builtins.list[int]:
        """Ids of the jobs waiting to run, oldest first."""
        rows = self.db.query("SELECT id FROM batch_jobs WHERE status = 'queued' ORDER BY id")
        return [r["id"] for r in rows]

    def start(self, job_id: int) -> None:
        self.db.execute(
            "UPDATE batch_jobs SET status = 'running', started_at = ? WHERE id = ?",
            [now(), job_id],
        )

    def finish(self, job_id: int, result: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE batch_jobs SET status = 'done', finished_at = ?, result = ? WHERE id = ?",
            [now(), json.dumps(result), job_id],
        )

    def fail(self, job_id: int, error: str) -> None:
        self.db.execute(
            "UPDATE batch_jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
            [now(), error, job_id],
        )

    def running(self) -> builtins.list[dict[str, Any]]:
        """The jobs marked `running` (at start-up: those a stopped server was running)."""
        rows = self.db.query(f"{SELECT} WHERE j.status = 'running' ORDER BY j.id")
        return [_decoded(r) for r in rows]

    def written_version(self, job: dict[str, Any], message: str) -> dict[str, Any] | None:
        """The version of the job's output dataset that the job wrote: recorded by its author
        with `message` since it started, and the result of no job already done."""
        rows = self.db.query(
            "SELECT v.version, v.num_rows FROM dataset_versions v "
            "JOIN datasets d ON d.id = v.dataset_id JOIN models m ON m.project_id = d.project_id "
            "WHERE m.id = ? AND d.name = ? AND v.message = ? AND v.author = ? "
            "AND v.created_at >= ? ORDER BY v.version",
            [
                job["model_id"],
                job["request"]["output"],
                message,
                job["created_by"],
                job["started_at"],
            ],
        )
        done = self.db.query(
            "SELECT result FROM batch_jobs WHERE model_id = ? AND status = 'done'",
            [job["model_id"]],
        )
        claimed = {(r["dataset"], r["version"]) for r in (json.loads(d["result"]) for d in done)}
        output = job["request"]["output"]
        return next((r for r in rows if (output, r["version"]) not in claimed), None)

    def interrupt(self) -> int:
        """At start-up: jobs left `running` by a stopped server fail; returns how many."""
        rows = self.db.execute(
            "UPDATE batch_jobs SET status = 'failed', finished_at = ?, "
            "error = 'interrupted: the server stopped while it ran' "
            "WHERE status = 'running' RETURNING id",
            [now()],
        )
        return len(rows)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("request", "result"):
        row[key] = json.loads(row[key]) if row[key] else None
    return row
