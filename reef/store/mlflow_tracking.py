"""What MLflow's protocol needs beyond reef's own run store: experiment names, tags and
lifecycle (an experiment is a reef project), run tags, deleted runs, run search in MLflow's
grammar, metric history pages and artifact listings by path."""

from __future__ import annotations

from typing import Any

from reef.errors import InvalidInput, NotFound
from reef.mlflow_search import Clause, Order
from reef.store.db import Database, now

STATUS_TO_REEF = {
    "RUNNING": "running",
    "SCHEDULED": "queued",
    "FINISHED": "succeeded",
    "FAILED": "failed",
    "KILLED": "cancelled",
}
STATUS_FROM_REEF = {v: k for k, v in STATUS_TO_REEF.items()}

_ATTRIBUTE_SQL = {
    "run_name": "coalesce(r.name, '')",
    "run_id": "CAST(r.id AS VARCHAR)",
    "user_id": "r.created_by",
    "status": "r.status",
    "artifact_uri": "''",
    "lifecycle_stage": "CASE WHEN r.deleted_at IS NULL THEN 'active' ELSE 'deleted' END",
    "start_time": "epoch_ms(coalesce(r.started_at, r.created_at))",
    "end_time": "epoch_ms(r.finished_at)",
}
_PARAM_TEXT = "(CAST(p.value AS JSON) ->> '$')"


class MlflowTracking:
    def __init__(self, db: Database) -> None:
        self.db = db

    # experiments ---------------------------------------------------------------------
    def experiment(self, project_id: int) -> dict[str, Any]:
        row = self.db.one(
            "SELECT p.id, p.name AS project, coalesce(e.name, p.name) AS name, "
            "coalesce(e.lifecycle_stage, 'active') AS lifecycle_stage, "
            "epoch_ms(p.created_at) AS created, epoch_ms(coalesce(e.updated_at, p.created_at)) "
            "AS updated FROM projects p LEFT JOIN mlflow_experiments e ON e.project_id = p.id "
            "WHERE p.id = ?",
            [project_id],
        )
        if row is None:
            raise NotFound(f"experiment {project_id} not found")
        row["tags"] = self.experiment_tags(project_id)
        return row

    def experiment_id_by_name(self, name: str) -> int | None:
        """The project an MLflow name points at: an experiment named so, else a project."""
        row = self.db.one("SELECT project_id FROM mlflow_experiments WHERE name = ?", [name])
        if row is None:
            row = self.db.one("SELECT id AS project_id FROM projects WHERE name = ?", [name])
        return None if row is None else int(row["project_id"])

    def name_experiment(self, project_id: int, name: str) -> None:
        self.db.execute(
            "INSERT INTO mlflow_experiments (project_id, name, lifecycle_stage, updated_at) "
            "VALUES (?, ?, 'active', ?) ON CONFLICT (project_id) DO UPDATE SET "
            "name = excluded.name, updated_at = excluded.updated_at",
            [project_id, name, now()],
        )

    def set_experiment_stage(self, project_id: int, stage: str) -> None:
        name = self.experiment(project_id)["name"]
        self.db.execute(
            "INSERT INTO mlflow_experiments (project_id, name, lifecycle_stage, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET "
            "lifecycle_stage = excluded.lifecycle_stage, updated_at = excluded.updated_at",
            [project_id, name, stage, now()],
        )

    def experiment_tags(self, project_id: int) -> dict[str, str]:
        rows = self.db.query(
            "SELECT key, value FROM experiment_tags WHERE project_id = ? ORDER BY key",
            [project_id],
        )
        return {r["key"]: r["value"] for r in rows}

    def set_experiment_tag(self, project_id: int, key: str, value: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO experiment_tags VALUES (?, ?, ?)", [project_id, key, value]
        )

    def delete_experiment_tag(self, project_id: int, key: str) -> None:
        self.db.execute(
            "DELETE FROM experiment_tags WHERE project_id = ? AND key = ?", [project_id, key]
        )

    # runs -----------------------------------------------------------------------------
    def run_tags(self, run_id: int) -> dict[str, str]:
        rows = self.db.query(
            "SELECT key, value FROM run_tags WHERE run_id = ? ORDER BY key", [run_id]
        )
        return {r["key"]: r["value"] for r in rows}

    def set_run_tags(self, run_id: int, tags: dict[str, str]) -> None:
        if not tags:
            return
        rows = [[run_id, k, v] for k, v in tags.items()]
        marks = ", ".join(["(?, ?, ?)"] * len(rows))
        self.db.execute(
            f"INSERT OR REPLACE INTO run_tags VALUES {marks}", [x for r in rows for x in r]
        )

    def delete_run_tag(self, run_id: int, key: str) -> bool:
        gone = self.db.execute(
            "DELETE FROM run_tags WHERE run_id = ? AND key = ? RETURNING key", [run_id, key]
        )
        return bool(gone)

    def children(self, run_id: int) -> list[int]:
        rows = self.db.query(
            "SELECT run_id FROM run_tags WHERE key = 'mlflow.parentRunId' AND value = ? "
            "ORDER BY run_id",
            [str(run_id)],
        )
        return [int(r["run_id"]) for r in rows]

    def set_deleted(self, run_id: int, deleted: bool) -> None:
        self.db.execute(
            "UPDATE runs SET deleted_at = ? WHERE id = ?", [now() if deleted else None, run_id]
        )

    def is_deleted(self, run_id: int) -> bool:
        return self.db.scalar("SELECT deleted_at IS NOT NULL FROM runs WHERE id = ?", [run_id])

    def param_values(self, run_id: int, step: str) -> dict[str, str]:
        rows = self.db.query(
            f"SELECT p.key, {_PARAM_TEXT} AS value FROM run_params p "
            "WHERE p.run_id = ? AND p.step = ?",
            [run_id, step],
        )
        return {r["key"]: r["value"] for r in rows}

    def latest_metrics(self, run_id: int) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT key, value, coalesce(step, 0) AS step, epoch_ms(ts) AS timestamp "
            "FROM run_metrics WHERE run_id = ? ORDER BY key",
            [run_id],
        )

    def metric_history(
        self, run_id: int, key: str, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT key, value, coalesce(step, 0) AS step, epoch_ms(ts) AS timestamp "
            "FROM metrics WHERE run_id = ? AND key = ? ORDER BY ts, step LIMIT ? OFFSET ?",
            [run_id, key, limit, offset],
        )

    def search_runs(
        self,
        project_ids: list[int],
        clauses: list[Clause],
        orders: list[Order],
        view: str,
        limit: int,
        offset: int,
    ) -> list[int]:
        """Ids of the runs of `project_ids` matching every clause, in `orders` (then newest
        first), one page."""
        if not project_ids:
            return []
        where = [f"r.project_id IN ({', '.join('?' * len(project_ids))})"]
        args: list[Any] = list(project_ids)
        if view != "ALL":
            where.append("r.deleted_at IS " + ("NOT NULL" if view == "DELETED_ONLY" else "NULL"))
        for c in clauses:
            sql, values = _condition(c)
            where.append(sql)
            args += values
        order_sql, order_args = [], []
        for o in orders:
            expr, values = _order_expr(o)
            order_sql.append(f"{expr} {'ASC' if o.ascending else 'DESC'} NULLS LAST")
            order_args += values
        order_sql += ["coalesce(r.started_at, r.created_at) DESC", "r.id DESC"]
        rows = self.db.query(
            f"SELECT r.id FROM runs r WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(order_sql)} LIMIT ? OFFSET ?",
            [*args, *order_args, limit, offset],
        )
        return [int(r["id"]) for r in rows]

    # artifacts ------------------------------------------------------------------------
    def artifact(self, run_id: int, path: str) -> dict[str, Any]:
        row = self.db.one(
            "SELECT digest, size FROM artifacts WHERE run_id = ? AND name = ? "
            "ORDER BY id DESC LIMIT 1",
            [run_id, path],
        )
        if row is None:
            raise NotFound(f"artifact {path!r} not found in run {run_id}")
        return row

    def artifact_files(self, run_id: int, prefix: str) -> list[tuple[str, str]]:
        """(path below `prefix`, digest) of every file under `prefix`, latest upload each."""
        rows = self.db.query(
            "SELECT name, last(digest ORDER BY id) AS digest FROM artifacts "
            "WHERE run_id = ? AND starts_with(name, ?) GROUP BY name ORDER BY name",
            [run_id, prefix.rstrip("/") + "/"],
        )
        return [(r["name"][len(prefix.rstrip("/")) + 1 :], r["digest"]) for r in rows]

    def artifact_listing(self, run_id: int, prefix: str) -> list[dict[str, Any]]:
        """The files and folders directly under `prefix` ('' for the top), MLflow style."""
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        rows = self.db.query(
            "SELECT name, last(size ORDER BY id) AS size FROM artifacts "
            "WHERE run_id = ? AND starts_with(name, ?) GROUP BY name ORDER BY name",
            [run_id, base],
        )
        files: dict[str, dict[str, Any]] = {}
        for r in rows:
            rest = r["name"][len(base) :]
            head, slash, _ = rest.partition("/")
            path = base + head
            if slash:
                files.setdefault(path, {"path": path, "is_dir": True})
            else:
                files[path] = {"path": path, "is_dir": False, "file_size": int(r["size"])}
        return list(files.values())


def _condition(c: Clause) -> tuple[str, list[Any]]:
    op, value = c.op, c.value
    if c.kind == "attribute" and c.key == "status":
        value = _statuses(value)
    if c.kind == "metric":
        return (
            "EXISTS (SELECT 1 FROM run_metrics m WHERE m.run_id = r.id AND m.key = ? "
            f"AND m.value {op} ?)",
            [c.key, value],
        )
    if c.kind == "param":
        table, column = "run_params p", _PARAM_TEXT
        test, args = _compare(column, op, value)
        return f"EXISTS (SELECT 1 FROM {table} WHERE p.run_id = r.id AND p.key = ? AND {test})", [
            c.key,
            *args,
        ]
    if c.kind == "tag":
        test, args = _compare("t.value", op, value)
        return (
            f"EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.key = ? AND {test})",
            [c.key, *args],
        )
    return _compare(_ATTRIBUTE_SQL[c.key], op, value)


def _compare(column: str, op: str, value: Any) -> tuple[str, list[Any]]:
    if op in ("IN", "NOT IN"):
        values = list(value) if isinstance(value, tuple) else [value]
        return f"{column} {op} ({', '.join('?' * len(values))})", values
    return f"{column} {op} ?", [value]


def _statuses(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(STATUS_TO_REEF.get(v.upper(), v) for v in value)
    return STATUS_TO_REEF.get(str(value).upper(), value)


def _order_expr(o: Order) -> tuple[str, list[Any]]:
    if o.kind == "metric":
        return "(SELECT m.value FROM run_metrics m WHERE m.run_id = r.id AND m.key = ? LIMIT 1)", [
            o.key
        ]
    if o.kind == "param":
        return (
            f"(SELECT {_PARAM_TEXT} FROM run_params p WHERE p.run_id = r.id AND p.key = ? LIMIT 1)",
            [o.key],
        )
    if o.kind == "tag":
        return "(SELECT t.value FROM run_tags t WHERE t.run_id = r.id AND t.key = ?)", [o.key]
    if o.key not in _ATTRIBUTE_SQL:
        raise InvalidInput(f"cannot order by unknown attribute {o.key!r}")
    return _ATTRIBUTE_SQL[o.key], []
