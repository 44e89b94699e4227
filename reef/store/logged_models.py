"""MLflow 3's logged models: what `mlflow.<flavor>.log_model` creates before it uploads the
model's files (kept as artifacts of the run under `models/<model_id>/`)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from reef.errors import NotFound
from reef.store.db import Database, now
from reef.store.ttl_cache import TTLCache


class LoggedModels:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._owners = TTLCache(ttl_s=30.0)  # model id -> (project name, run id)

    def owner(self, model_id: str) -> tuple[str, int]:
        """(project name, run id) of a logged model: what an upload of its files checks, kept
        30 s (neither changes; a deleted model is dropped at once)."""
        return self._owners.get_or(model_id, lambda: self._owner(model_id))

    def _owner(self, model_id: str) -> tuple[str, int]:
        row = self.db.one(
            "SELECT p.name, coalesce(m.run_id, 0) AS run_id FROM logged_models m "
            "JOIN projects p ON p.id = m.project_id WHERE m.model_id = ?",
            [model_id],
        )
        if row is None:
            raise NotFound(f"Logged model with ID '{model_id}' not found.")
        return row["name"], int(row["run_id"])

    def create(
        self,
        project_id: int,
        run_id: int | None,
        name: str,
        model_type: str | None,
        params: dict[str, str],
        tags: dict[str, str],
        author: str,
    ) -> str:
        model_id = "m-" + secrets.token_hex(16)
        stamp = now()
        self.db.execute(
            "INSERT INTO logged_models "
            "VALUES (?, ?, ?, ?, ?, 'LOGGED_MODEL_PENDING', ?, ?, ?, ?, ?)",
            [
                model_id,
                project_id,
                run_id,
                name,
                model_type,
                json.dumps(params),
                json.dumps(tags),
                author,
                stamp,
                stamp,
            ],
        )
        return model_id

    def get(self, model_id: str) -> dict[str, Any]:
        row = self.db.one(
            "SELECT *, epoch_ms(created_at) AS created_ms, epoch_ms(updated_at) AS updated_ms "
            "FROM logged_models WHERE model_id = ?",
            [model_id],
        )
        if row is None:
            raise NotFound(f"Logged model with ID '{model_id}' not found.")
        return {**row, "params": json.loads(row["params"]), "tags": json.loads(row["tags"])}

    def update(self, model_id: str, **fields: Any) -> None:
        current = self.get(model_id)
        for key in ("params", "tags"):
            if key in fields:
                fields[key] = json.dumps({**current[key], **fields[key]})
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(
            f"UPDATE logged_models SET {sets}, updated_at = ? WHERE model_id = ?",
            [*fields.values(), now(), model_id],
        )

    def delete_tag(self, model_id: str, key: str) -> None:
        tags = self.get(model_id)["tags"]
        tags.pop(key, None)
        self.db.execute(
            "UPDATE logged_models SET tags = ?, updated_at = ? WHERE model_id = ?",
            [json.dumps(tags), now(), model_id],
        )

    def delete(self, model_id: str) -> None:
        self.get(model_id)
        self.db.execute("DELETE FROM logged_models WHERE model_id = ?", [model_id])
        self._owners.clear()

    def in_projects(self, project_ids: list[int], limit: int, offset: int) -> list[str]:
        if not project_ids:
            return []
        marks = ", ".join("?" * len(project_ids))
        rows = self.db.query(
            f"SELECT model_id FROM logged_models WHERE project_id IN ({marks}) "
            "ORDER BY created_at DESC LIMIT ? OFFSET ?",
            [*project_ids, limit, offset],
        )
        return [r["model_id"] for r in rows]
