"""The model registry: models, numbered versions with lineage, and aliases such as production."""

from __future__ import annotations

import json
from typing import Any

from reef.errors import InvalidInput, NotFound
from reef.store.db import Database, now
from reef.store.people import check_name

DEFAULT_ALIAS = "production"


class Models:
    def __init__(self, db: Database) -> None:
        self.db = db

    def model_id(self, project_id: int, name: str, create: bool = False) -> int:
        row = self.db.one(
            "SELECT id FROM models WHERE project_id = ? AND name = ?", [project_id, name]
        )
        if row:
            return int(row["id"])
        if not create:
            raise NotFound(f"model '{name}' not found")
        check_name("model", name)
        rows = self.db.execute(
            "INSERT INTO models (project_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
            [project_id, name, now()],
        )
        return int(rows[0][0])

    def register(
        self,
        project_id: int,
        name: str,
        *,
        run_id: int,
        step_name: str,
        onnx_digest: str,
        schema: dict,
        metrics: dict,
        lineage: dict,
        author: str,
    ) -> int:
        """Add the next version of model `name` (created when new); returns its number."""
        model_id = self.model_id(project_id, name, create=True)
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                [model_id],
            )
            version = cur.fetchone()[0]
            cur.execute(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    model_id,
                    version,
                    run_id,
                    step_name,
                    onnx_digest,
                    json.dumps(schema),
                    float(schema.get("parity", {}).get("max_abs_diff", 0.0)),
                    json.dumps(metrics),
                    json.dumps(lineage),
                    author,
                    now(),
                ],
            )
        return int(version)

    def list(self, project_id: int) -> list[dict]:
        return self.db.query(
            "SELECT m.name, m.description, max(v.version) AS latest, count(v.version) AS versions, "
            "(SELECT string_agg(a.alias || '=' || a.version, ', ') FROM model_aliases a "
            " WHERE a.model_id = m.id) AS aliases "
            "FROM models m LEFT JOIN model_versions v ON v.model_id = m.id "
            "WHERE m.project_id = ? GROUP BY m.id, m.name, m.description ORDER BY m.name",
            [project_id],
        )

    def versions(self, model_id: int) -> list[dict]:
        rows = self.db.query(
            "SELECT * FROM model_versions WHERE model_id = ? ORDER BY version DESC", [model_id]
        )
        return [_decode(r) for r in rows]

    def version(self, model_id: int, version: int) -> dict:
        row = self.db.one(
            "SELECT * FROM model_versions WHERE model_id = ? AND version = ?", [model_id, version]
        )
        if row is None:
            raise NotFound(f"model version {version} not found")
        return _decode(row)

    def aliases(self, model_id: int) -> dict[str, int]:
        rows = self.db.query(
            "SELECT alias, version FROM model_aliases WHERE model_id = ? ORDER BY alias",
            [model_id],
        )
        return {r["alias"]: r["version"] for r in rows}

    def set_alias(self, model_id: int, alias: str, version: int) -> None:
        check_name("alias", alias)
        self.version(model_id, version)
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", [model_id, alias]
            )
            cur.execute("INSERT INTO model_aliases VALUES (?, ?, ?)", [model_id, alias, version])

    def serving_version(self, model_id: int, alias: str | None = None) -> int:
        """The version behind `alias`; without one, production if set, else the latest."""
        aliases = self.aliases(model_id)
        if alias is not None:
            if alias.isdigit():
                return self.version(model_id, int(alias))["version"]
            if alias not in aliases:
                raise InvalidInput(f"model has no alias '{alias}'")
            return aliases[alias]
        if DEFAULT_ALIAS in aliases:
            return aliases[DEFAULT_ALIAS]
        latest = self.db.scalar(
            "SELECT max(version) FROM model_versions WHERE model_id = ?", [model_id]
        )
        if latest is None:
            raise NotFound("model has no versions yet")
        return int(latest)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **{k: json.loads(row[k]) for k in ("schema", "metrics", "lineage")}}
