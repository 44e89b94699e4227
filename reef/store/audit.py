"""The audit log: who changed what, when, on which target. Append-only."""

from __future__ import annotations

import json
from typing import Any

from reef.store.db import Database, now


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        project: str | None = None,
        **detail: Any,
    ) -> None:
        self.db.execute(
            'INSERT INTO audit ("at", actor, action, project, target, detail) '
            "VALUES (?, ?, ?, ?, ?, ?)",
            [now(), actor, action, project, target, json.dumps(detail, default=str)],
        )

    def list(self, project: str | None = None, limit: int = 100) -> list[dict]:
        where, params = ("WHERE project = ?", [project]) if project else ("", [])
        return self.db.query(
            f'SELECT id, "at", actor, action, project, target, detail FROM audit {where} '
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
