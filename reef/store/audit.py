"""The audit log: who changed what, when, on which target. Append-only."""

from __future__ import annotations

import builtins
import json
from typing import Any

from reef.store.db import Database, now

_INSERT = (
    'INSERT INTO audit ("at", actor, action, project, target, detail) VALUES (?, ?, ?, ?, ?, ?)'
)


def _entry(actor: str, action: str, target: str, project: str | None, detail: dict) -> list:
    return [now(), actor, action, project, target, json.dumps(detail, default=str)]


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
        self.db.execute(_INSERT, _entry(actor, action, target, project, detail))

    @staticmethod
    def record_in(
        cur: Any, actor: str, action: str, target: str, project: str | None = None, **detail: Any
    ) -> None:
        """`record`, inside the caller's transaction: the entry commits with what it records."""
        cur.execute(_INSERT, _entry(actor, action, target, project, detail))

    def list(self, project: str | None = None, limit: int = 100) -> list[dict]:
        where, params = ("WHERE project = ?", [project]) if project else ("", [])
        return self.db.query(
            f'SELECT id, "at", actor, action, project, target, detail FROM audit {where} '
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )

    def of_target(self, project: str, target: str, limit: int = 20) -> builtins.list[dict]:
        """The latest entries about one thing of a project (e.g. "pipeline flow")."""
        return self.db.query(
            'SELECT id, "at", actor, action, target, detail FROM audit '
            "WHERE project = ? AND target = ? ORDER BY id DESC LIMIT ?",
            [project, target, limit],
        )
