"""Outgoing webhooks in DuckDB: each project's endpoints (URL, events, secret) and every
delivery with its attempts, last status and error."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reef.errors import NotFound
from reef.store.db import Database, now

_HOOK = "id, project_id, url, events, secret, enabled, created_by, created_at"
_DELIVERY = (
    "id, webhook_id, event, payload, status, attempts, next_at, response_status, error, "
    "created_at, finished_at"
)


class Webhooks:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, project_id: int, url: str, events: list[str], secret: str, author: str) -> int:
        rows = self.db.execute(
            "INSERT INTO webhooks (project_id, url, events, secret, enabled, created_by, "
            "created_at) VALUES (?, ?, ?, ?, true, ?, ?) RETURNING id",
            [project_id, url, json.dumps(events), secret, author, now()],
        )
        return int(rows[0][0])

    def get(self, project_id: int, webhook_id: int) -> dict[str, Any]:
        hook = self.by_id(webhook_id)
        if hook["project_id"] != project_id:
            raise NotFound(f"webhook {webhook_id} not found")
        return hook

    def by_id(self, webhook_id: int) -> dict[str, Any]:
        row = self.db.one(f"SELECT {_HOOK} FROM webhooks WHERE id = ?", [webhook_id])
        if row is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return _hook(row)

    def of_project(self, project_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {_HOOK} FROM webhooks WHERE project_id = ? ORDER BY id", [project_id]
        )
        return [_hook(r) for r in rows]

    def listening(self, project_id: int, event: str) -> list[dict[str, Any]]:
        return [h for h in self.of_project(project_id) if h["enabled"] and event in h["events"]]

    def set_enabled(self, webhook_id: int, enabled: bool) -> None:
        self.db.execute("UPDATE webhooks SET enabled = ? WHERE id = ?", [enabled, webhook_id])

    def delete(self, webhook_id: int) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", [webhook_id])
            cur.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])

    # deliveries --------------------------------------------------------------------------
    def enqueue(self, webhook_id: int, event: str, payload: dict[str, Any]) -> int:
        rows = self.db.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, "
            "next_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?) RETURNING id",
            [webhook_id, event, json.dumps(payload, default=str), now(), now()],
        )
        return int(rows[0][0])

    def due(self, at: datetime) -> list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE status = 'pending' "
            "AND next_at <= ? ORDER BY next_at, id",
            [at],
        )
        return [_delivery(r) for r in rows]

    def attempted(
        self, delivery_id: int, status: str, response: int | None, error: str | None,
        next_at: datetime | None,
    ) -> None:  # fmt: skip
        """Record an attempt: `status` pending (retry at `next_at`), delivered or failed."""
        done = None if status == "pending" else now()
        self.db.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_at = ?, "
            "response_status = ?, error = ?, finished_at = ? WHERE id = ?",
            [status, next_at, response, error, done, delivery_id],
        )

    def deliveries(self, webhook_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE webhook_id = ? "
            "ORDER BY id DESC LIMIT ?",
            [webhook_id, limit],
        )
        return [_delivery(r) for r in rows]

    def delivery(self, webhook_id: int, delivery_id: int) -> dict[str, Any]:
        row = self.db.one(
            f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE id = ? AND webhook_id = ?",
            [delivery_id, webhook_id],
        )
        if row is None:
            raise NotFound(f"delivery {delivery_id} of webhook {webhook_id} not found")
        return _delivery(row)


def _hook(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "events": json.loads(row["events"])}


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "payload": json.loads(row["payload"])}
