"""Dataset pointers in DuckDB: which datasets a project has, and who made each Lance version."""

from __future__ import annotations

import json

from reef.errors import NotFound
from reef.store.db import Database, now


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def dataset_id(self, project_id: int, name: str, author: str | None = None) -> int:
        """The dataset's id; with `author`, create the dataset row when missing."""
        row = self.db.one(
            "SELECT id FROM datasets WHERE project_id = ? AND name = ?", [project_id, name]
        )
        if row:
            return int(row["id"])
        if author is None:
            raise NotFound(f"dataset '{name}' not found")
        rows = self.db.execute(
            "INSERT INTO datasets (project_id, name, created_by, created_at) "
            "VALUES (?, ?, ?, ?) RETURNING id",
            [project_id, name, author, now()],
        )
        return int(rows[0][0])

    def record_version(
        self,
        dataset_id: int,
        version: int,
        *,
        author: str,
        message: str,
        num_rows: int,
        columns: list[tuple[str, str]],
        source: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO dataset_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                dataset_id,
                version,
                message,
                author,
                num_rows,
                json.dumps([{"name": n, "type": t} for n, t in columns]),
                source,
                now(),
            ],
        )

    def datasets(self, project_id: int) -> list[dict]:
        return self.db.query(
            "SELECT d.name, d.description, d.created_by, d.created_at, "
            "max(v.version) AS latest, count(v.version) AS versions, "
            "arg_max(v.num_rows, v.version) AS num_rows "
            "FROM datasets d LEFT JOIN dataset_versions v ON v.dataset_id = d.id "
            "WHERE d.project_id = ? GROUP BY ALL ORDER BY d.name",
            [project_id],
        )

    def versions(self, dataset_id: int) -> list[dict]:
        rows = self.db.query(
            "SELECT version, message, author, num_rows, columns, source, created_at "
            "FROM dataset_versions WHERE dataset_id = ? ORDER BY version DESC",
            [dataset_id],
        )
        for r in rows:
            r["columns"] = json.loads(r["columns"])
        return rows
