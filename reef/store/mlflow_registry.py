"""MLflow's model registry names and versions, each pointing at a reef model version when
the logged model could be exported to ONNX (else kept with the reason it is not servable)."""

from __future__ import annotations

import json
from typing import Any

from reef.errors import Conflict, NotFound
from reef.store.db import Database, fetched, now


class MlflowRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, author: str, description: str, tags: dict[str, str]) -> None:
        if self.db.one("SELECT name FROM mlflow_registered_models WHERE name = ?", [name]):
            raise Conflict(f"Registered Model (name={name}) already exists.")
        stamp = now()
        self.db.execute(
            "INSERT INTO mlflow_registered_models VALUES (?, NULL, ?, ?, ?, ?, ?)",
            [name, description, json.dumps(tags), author, stamp, stamp],
        )

    def get(self, name: str) -> dict[str, Any]:
        row = self.db.one(
            "SELECT *, epoch_ms(created_at) AS created_ms, epoch_ms(updated_at) AS updated_ms "
            "FROM mlflow_registered_models WHERE name = ?",
            [name],
        )
        if row is None:
            raise NotFound(f"Registered Model with name={name} not found")
        return {**row, "tags": json.loads(row["tags"])}

    def names(self) -> list[str]:
        rows = self.db.query("SELECT name FROM mlflow_registered_models ORDER BY name")
        return [r["name"] for r in rows]

    def update(self, name: str, **fields: Any) -> None:
        if "tags" in fields:
            fields["tags"] = json.dumps(fields["tags"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(
            f"UPDATE mlflow_registered_models SET {sets}, updated_at = ? WHERE name = ?",
            [*fields.values(), now(), name],
        )

    def delete(self, name: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM mlflow_model_versions WHERE name = ?", [name])
            cur.execute("DELETE FROM mlflow_registered_models WHERE name = ?", [name])

    def add_version(
        self,
        name: str,
        reef_version: int | None,
        source: str,
        run_id: int | None,
        model_id: str | None,
        message: str,
        tags: dict[str, str],
        author: str,
    ) -> int:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM mlflow_model_versions WHERE name = ?",
                [name],
            )
            version = int(fetched(cur.fetchone())[0])
            cur.execute(
                "INSERT INTO mlflow_model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    version,
                    reef_version,
                    source,
                    run_id,
                    model_id,
                    message,
                    json.dumps(tags),
                    author,
                    now(),
                ],
            )
        return version

    def version(self, name: str, version: int) -> dict[str, Any]:
        row = self.db.one(
            "SELECT *, epoch_ms(created_at) AS created_ms FROM mlflow_model_versions "
            "WHERE name = ? AND version = ?",
            [name, version],
        )
        if row is None:
            raise NotFound(f"Model Version (name={name}, version={version}) not found")
        return {**row, "tags": json.loads(row["tags"])}

    def versions(self, name: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT version FROM mlflow_model_versions WHERE name = ? ORDER BY version", [name]
        )
        return [self.version(name, r["version"]) for r in rows]

    def by_reef_version(self, name: str, reef_version: int) -> int | None:
        return self.db.scalar(
            "SELECT version FROM mlflow_model_versions WHERE name = ? AND reef_version = ?",
            [name, reef_version],
        )

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        self.db.execute(
            "UPDATE mlflow_model_versions SET tags = ? WHERE name = ? AND version = ?",
            [json.dumps(tags), name, version],
        )

    def delete_version(self, name: str, version: int) -> None:
        self.db.execute(
            "DELETE FROM mlflow_model_versions WHERE name = ? AND version = ?", [name, version]
        )
