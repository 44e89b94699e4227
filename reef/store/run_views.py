"""Views of runs and steps across projects, filtered by who may read them in the query
itself (so a LIMIT counts only rows the reader may see)."""

from __future__ import annotations

from typing import Any

from reef.store.db import Database
from reef.store.people import Principal
from reef.store.projects import LIBRARY
from reef.store.status import Status

# a project `who` may read: an admin reads all, everyone reads the library, members theirs
_READABLE = (
    "(? OR p.name = ? OR EXISTS (SELECT 1 FROM members m "
    "WHERE m.project_id = p.id AND m.user_id = ?))"
)


def _readable(who: Principal) -> list[Any]:
    return [who.is_admin, LIBRARY, who.user_id]


class RunViews:
    def __init__(self, db: Database) -> None:
        self.db = db

    def module_runs(self, module: str, who: Principal, limit: int = 50) -> list[dict]:
        """The latest runs that ran `module` (project/name), among those `who` may read."""
        return self.db.query(
            "SELECT DISTINCT r.id, p.name AS project, r.status, r.created_by, r.created_at, "
            "s.commit_sha FROM steps s JOIN runs r ON r.id = s.run_id "
            f"JOIN projects p ON p.id = r.project_id WHERE s.module = ? AND {_READABLE} "
            "ORDER BY r.id DESC LIMIT ?",
            [module, *_readable(who), limit],
        )

    def queue(self, who: Principal) -> list[dict]:
        """Steps waiting or running in projects `who` may read, running first, then by
        priority and age."""
        return self.db.query(
            "SELECT s.id, s.name, s.status, s.module, s.gpus, s.gpu_ids, s.started_at, "
            "s.run_id, s.memory_mb, s.attempt, s.retries, p.name AS project, r.created_by, "
            "coalesce(CAST(json_extract(r.spec, '$.priority') AS INTEGER), 0) AS priority, "
            "w.worker FROM steps s JOIN runs r ON r.id = s.run_id "
            "LEFT JOIN step_workers w ON w.step_id = s.id AND w.active "
            "JOIN projects p ON p.id = r.project_id "
            f"WHERE s.status IN (?, ?) AND {_READABLE} "
            "ORDER BY s.status DESC, priority DESC, s.id",
            [Status.QUEUED, Status.RUNNING, *_readable(who)],
        )
