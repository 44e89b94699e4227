"""The model registry: models, numbered versions with lineage, and aliases such as production."""

from __future__ import annotations

import json
from typing import Any

from reef.errors import InvalidInput, NotFound
from reef.store.db import Database, fetched, now
from reef.store.people import check_name

DEFAULT_ALIAS = "production"
Rows = list[dict[str, Any]]  # named: the class below has a method called `list`


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
        metrics_from: list[str] | None,
        lineage: dict,
        author: str,
        reference: dict | None = None,
    ) -> int:
        """Add the next version of model `name` (created when new); returns its number.
        `metrics_from` names the steps `metrics` came from (None: unknown); `reference` holds
        the training data's quantile bins per feature (for drift)."""
        model_id = self.model_id(project_id, name, create=True)
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                [model_id],
            )
            version = fetched(cur.fetchone())[0]
            cur.execute(
                "INSERT INTO model_versions (model_id, version, run_id, step_name, onnx_digest, "
                "schema, parity_max_diff, metrics, lineage, created_by, created_at, reference, "
                "metrics_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    json.dumps(reference) if reference is not None else None,
                    json.dumps(metrics_from) if metrics_from is not None else None,
                ],
            )
        return int(version)

    def same_as_latest(
        self, project_id: int, name: str, onnx_digest: str, schema: dict
    ) -> int | None:
        """The latest version of model `name` when its model file (by content hash) and
        schema are these, else None."""
        row = self.db.one(
            "SELECT v.version, v.onnx_digest, v.schema FROM model_versions v "
            "JOIN models m ON m.id = v.model_id WHERE m.project_id = ? AND m.name = ? "
            "ORDER BY v.version DESC LIMIT 1",
            [project_id, name],
        )
        if row is None or row["onnx_digest"] != onnx_digest:
            return None
        return int(row["version"]) if json.loads(row["schema"]) == schema else None

    def record_reuse(
        self, project_id: int, name: str, version: int, run_id: int, step_name: str
    ) -> None:
        """Link run `run_id`'s step to an existing version it produced again unchanged."""
        self.db.execute(
            "INSERT OR IGNORE INTO model_version_reuses "
            "(model_id, version, run_id, step_name, created_at) VALUES (?, ?, ?, ?, ?)",
            [self.model_id(project_id, name), version, run_id, step_name, now()],
        )

    def run_versions(self, run_id: int) -> list[dict]:
        """The versions run `run_id` registered or, `unchanged`, produced again unchanged."""
        return self.db.query(
            "SELECT m.name AS model, v.version, false AS unchanged FROM model_versions v "
            "JOIN models m ON m.id = v.model_id WHERE v.run_id = ? "
            "UNION ALL SELECT m.name, r.version, true FROM model_version_reuses r "
            "JOIN models m ON m.id = r.model_id WHERE r.run_id = ? ORDER BY 1, 2",
            [run_id, run_id],
        )

    def list(self, project_id: int) -> Rows:
        return self.db.query(
            "SELECT m.name, m.description, max(v.version) AS latest, count(v.version) AS versions, "
            "(SELECT string_agg(a.alias || '=' || a.version, ', ') FROM model_aliases a "
            " WHERE a.model_id = m.id) AS aliases "
            "FROM models m LEFT JOIN model_versions v ON v.model_id = m.id "
            "WHERE m.project_id = ? GROUP BY m.id, m.name, m.description ORDER BY m.name",
            [project_id],
        )

    def versions(self, model_id: int) -> Rows:
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

    def set_alias(self, model_id: int, alias: str, version: int) -> int | None:
        """Point `alias` at `version`; returns the version it pointed at before (or None)."""
        check_name("alias", alias)
        self.version(model_id, version)
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM model_aliases WHERE model_id = ? AND alias = ? RETURNING version",
                [model_id, alias],
            )
            before = cur.fetchone()
            cur.execute("INSERT INTO model_aliases VALUES (?, ?, ?)", [model_id, alias, version])
        return int(before[0]) if before else None

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

    # --- the model's settings: card, gates, traffic, monitor --------------------------------

    def settings(self, model_id: int) -> dict[str, Any]:
        row = self.db.one(
            "SELECT name, description, card, gates, traffic, monitor FROM models WHERE id = ?",
            [model_id],
        )
        if row is None:
            raise NotFound(f"model {model_id} not found")
        for key in SETTINGS:
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def set_description(self, model_id: int, description: str) -> None:
        self.db.execute("UPDATE models SET description = ? WHERE id = ?", [description, model_id])

    def set_setting(self, model_id: int, key: str, value: dict | None) -> None:
        """Store one JSON setting of the model (card, gates, traffic or monitor)."""
        if key not in SETTINGS:
            raise ValueError(f"unknown model setting {key!r}")
        self.db.execute(
            f"UPDATE models SET {key} = ? WHERE id = ?",
            [None if value is None else json.dumps(value), model_id],
        )

    def project_gates(self, project_id: int) -> dict | None:
        raw = self.db.scalar("SELECT gates FROM project_gates WHERE project_id = ?", [project_id])
        return json.loads(raw) if raw else None

    def set_project_gates(self, project_id: int, gates: dict | None) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM project_gates WHERE project_id = ?", [project_id])
            if gates is not None:
                cur.execute(
                    "INSERT INTO project_gates VALUES (?, ?)", [project_id, json.dumps(gates)]
                )

    # --- promotions and rollbacks -----------------------------------------------------------

    def record_promotion(
        self,
        model_id: int,
        alias: str,
        version: int,
        previous: int | None,
        *,
        action: str,
        actor: str,
        override: bool = False,
        checks: Rows | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO model_promotions (model_id, alias, version, previous, action, actor, "
            'override, checks, "at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [
                model_id,
                alias,
                version,
                previous,
                action,
                actor,
                override,
                json.dumps(checks or []),
                now(),
            ],
        )

    def promotions(self, model_id: int, limit: int = 50) -> Rows:
        rows = self.db.query(
            'SELECT alias, version, previous, action, actor, override, checks, "at" '
            "FROM model_promotions WHERE model_id = ? ORDER BY id DESC LIMIT ?",
            [model_id, limit],
        )
        return [{**r, "checks": json.loads(r["checks"])} for r in rows]

    def rollback_target(self, model_id: int, alias: str) -> int | None:
        """The version `alias` pointed at before its latest change (None: nothing to undo)."""
        return self.db.scalar(
            "SELECT previous FROM model_promotions WHERE model_id = ? AND alias = ? "
            "ORDER BY id DESC LIMIT 1",
            [model_id, alias],
        )

    # --- alerts -----------------------------------------------------------------------------

    def raise_alert(
        self, model_id: int, kind: str, version: int, message: str, detail: dict
    ) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM model_alerts WHERE model_id = ? AND kind = ?", [model_id, kind]
            )
            cur.execute(
                "INSERT INTO model_alerts VALUES (?, ?, ?, ?, ?, ?)",
                [model_id, kind, version, message, json.dumps(detail), now()],
            )

    def clear_alert(self, model_id: int, kind: str) -> None:
        self.db.execute(
            "DELETE FROM model_alerts WHERE model_id = ? AND kind = ?", [model_id, kind]
        )

    def alerts(self, project_id: int, model_id: int | None = None) -> Rows:
        """Open alerts of a project's models (or of one model), newest first."""
        rows = self.db.query(
            "SELECT m.name AS model, a.kind, a.version, a.message, a.detail, a.raised_at "
            "FROM model_alerts a JOIN models m ON m.id = a.model_id "
            "WHERE m.project_id = ? AND (? IS NULL OR m.id = ?) ORDER BY a.raised_at DESC",
            [project_id, model_id, model_id],
        )
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]


SETTINGS = ("card", "gates", "traffic", "monitor")


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    decoded = {k: json.loads(row[k]) for k in ("schema", "metrics", "lineage")}
    decoded["reference"] = json.loads(row["reference"]) if row.get("reference") else None
    # the steps the metrics came from; None: unknown (registered before metrics were kept per
    # step, and the run's steps were not there to correct them: migration 0071)
    decoded["metrics_from"] = json.loads(row["metrics_from"]) if row.get("metrics_from") else None
    return {**row, **decoded}
