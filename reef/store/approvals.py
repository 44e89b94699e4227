"""Approval requests in DuckDB: a promotion a pipeline asked for whose gates failed, waiting
for a maintainer to approve or reject it (with a comment that stays on the version)."""

from __future__ import annotations

import json
from typing import Any

from reef.errors import NotFound
from reef.store.db import Database, now

_COLUMNS = (
    "id, model_id, version, alias, run_id, checks, status, requested_at, decided_by, "
    "decided_at, comment"
)


class Approvals:
    def __init__(self, db: Database) -> None:
        self.db = db

    def request(
        self, project_id: int, model_id: int, version: int, alias: str, run_id: int | None,
        checks: list[dict[str, Any]],
    ) -> int:  # fmt: skip
        rows = self.db.execute(
            "INSERT INTO approvals (project_id, model_id, version, alias, run_id, checks, "
            "status, requested_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
            [project_id, model_id, version, alias, run_id, json.dumps(checks, default=str),
             now()],
        )  # fmt: skip
        return int(rows[0][0])

    def get(self, model_id: int, approval_id: int) -> dict[str, Any]:
        row = self.db.one(
            f"SELECT {_COLUMNS} FROM approvals WHERE id = ? AND model_id = ?",
            [approval_id, model_id],
        )
        if row is None:
            raise NotFound(f"approval request {approval_id} not found")
        return _row(row)

    def of_model(self, model_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM approvals WHERE model_id = ? ORDER BY id DESC", [model_id]
        )
        return [_row(r) for r in rows]

    def decide(self, approval_id: int, status: str, who: str, comment: str) -> bool:
        """Settle a pending request; False when it was no longer pending."""
        rows = self.db.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, comment = ? "
            "WHERE id = ? AND status = 'pending' RETURNING id",
            [status, who, now(), comment, approval_id],
        )
        return bool(rows)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "checks": json.loads(row["checks"])}
