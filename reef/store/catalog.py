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
        produced_by: tuple[int, str] | None = None,
    ) -> None:
        """`produced_by`: (run id, step name) when a pipeline step published this version."""
        run_id, step = produced_by or (None, None)
        self.db.execute(
            "INSERT INTO dataset_versions (dataset_id, version, message, author, num_rows, "
            "columns, source, created_at, produced_run, produced_step) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                dataset_id,
                version,
                message,
                author,
                num_rows,
                json.dumps([{"name": n, "type": t} for n, t in columns]),
                source,
                now(),
                run_id,
                step,
            ],
        )

    def published(self, run_id: int) -> list[dict]:
        """The dataset versions that the steps of run `run_id` published."""
        return self.db.query(
            "SELECT d.name AS dataset, v.version, v.produced_step AS step "
            "FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
            "WHERE v.produced_run = ? ORDER BY d.name, v.version",
            [run_id],
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
            f"SELECT {_VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = ? "
            "ORDER BY version DESC",
            [dataset_id],
        )
        return [_version_row(r) for r in rows]

    def version(self, dataset_id: int, version: int) -> dict | None:
        row = self.db.one(
            f"SELECT {_VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = ? AND version = ?",
            [dataset_id, version],
        )
        return _version_row(row) if row else None

    def previous_version(self, dataset_id: int, version: int) -> int | None:
        """The recorded version before `version` (what drift rules compare with)."""
        return self.db.scalar(
            "SELECT max(version) FROM dataset_versions WHERE dataset_id = ? AND version < ?",
            [dataset_id, version],
        )

    # --- validation rules and their results -----------------------------------------------

    def rules(self, dataset_id: int) -> list[dict]:
        rules = self.db.scalar("SELECT rules FROM dataset_rules WHERE dataset_id = ?", [dataset_id])
        return json.loads(rules) if rules else []

    def set_rules(self, dataset_id: int, rules: list[dict], author: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO dataset_rules VALUES (?, ?, ?, ?)",
            [dataset_id, json.dumps(rules), author, now()],
        )

    def record_check(self, dataset_id: int, version: int, passed: bool, checks: list) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO dataset_checks VALUES (?, ?, ?, ?, ?)",
            [dataset_id, version, passed, json.dumps(checks, default=str), now()],
        )

    def checks(self, dataset_id: int) -> dict[int, dict]:
        """Version -> {"passed", "checks", "checked_at"} for every checked version."""
        rows = self.db.query(
            "SELECT version, passed, checks, checked_at FROM dataset_checks WHERE dataset_id = ?",
            [dataset_id],
        )
        return {r["version"]: {**r, "checks": json.loads(r["checks"])} for r in rows}

    # --- lineage ----------------------------------------------------------------------------

    def readers(self, project_id: int, name: str) -> dict[int, list[dict]]:
        """Version -> the runs (and steps) of the project that read that version."""
        rows = self.db.query(
            "SELECT r.id AS run_id, r.pipeline, r.name AS run_name, r.status, r.created_at, "
            "s.name AS step, s.inputs FROM steps s JOIN runs r ON r.id = s.run_id "
            "WHERE r.project_id = ? AND CAST(s.inputs AS VARCHAR) LIKE ? ORDER BY r.id DESC",
            [project_id, f'%"dataset:{name}@%'],
        )
        found: dict[int, list[dict]] = {}
        for row in rows:
            for ref in json.loads(row.pop("inputs")).values():
                head, _, version = str(ref).partition("@")
                if head == f"dataset:{name}" and version.isdigit():
                    found.setdefault(int(version), []).append(row)
        return found


_VERSION_COLUMNS = (
    "version, message, author, num_rows, columns, source, created_at, produced_run, produced_step"
)


def _version_row(row: dict) -> dict:
    """A version row with its columns parsed and `produced_by` {run, step} (or None)."""
    row["columns"] = json.loads(row["columns"])
    run_id, step = row.pop("produced_run"), row.pop("produced_step")
    row["produced_by"] = None if run_id is None else {"run": run_id, "step": step}
    return row
