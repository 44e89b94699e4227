"""Pipelines, runs, their steps, and what steps report: params, metrics, artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from reef.errors import NotFound
from reef.store import run_search
from reef.store.db import Database, fetched, now
from reef.store.metric_ingest import SCHEMA as POINTS
from reef.store.metric_ingest import (
    MetricIngest,
    points_table,
    rows_as_columns,
)
from reef.store.metric_ingest import insert as insert_points
from reef.store.run_search import RunQuery
from reef.store.status import FINISHED, Status
from reef.store.ttl_cache import MISSING, TTLCache


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    pipeline: str | None
    status: Status
    spec: dict
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    rerun_of: int | None
    name: str | None = None
    sweep_id: int | None = None
    deleted_at: datetime | None = None  # an MLflow client deleted it (restorable)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, kw_only=True)
class StepPlan:
    """A step as planned: its spec pinned to a module commit, resolved parameters and
    dataset versions. Every field is a column of `steps` that `create_run` writes, so a
    field added here is stored (and read back into `Step`) without another list to edit."""

    name: str
    module: str  # project/module
    commit_sha: str
    params: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)  # name -> pinned reference
    outputs: dict = field(default_factory=dict)  # name -> kind (dataset or model)
    timeout_s: float
    cache_key: str | None = None  # same key: the outputs of an earlier step can be reused
    gpus: int = 0  # GPUs it needs; it waits in the queue until they are free
    memory_mb: int | None = None  # it is killed when its processes hold more
    retries: int = 0  # times a failed step is started again automatically


@dataclass(frozen=True, kw_only=True)
class Step(StepPlan):
    """A run's step: its plan and what happened when it ran."""

    id: int
    run_id: int
    position: int
    status: Status
    task_id: str | None = None
    pid: int | None = None
    pid_started: float | None = None
    exit_code: int | None = None
    error: str | None = None  # why it failed: the status says that it did
    started_at: datetime | None = None
    finished_at: datetime | None = None
    record: dict | None = None
    cached_from: int | None = None
    gpu_ids: str | None = None
    attempt: int = 0
    worker: str | None = None  # the remote worker it ran on; set by the run page (step_workers)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or now()) - self.started_at).total_seconds()


PLAN_COLUMNS = tuple(f.name for f in dataclass_fields(StepPlan))
JSON_COLUMNS = ("params", "inputs", "outputs")


def _run(row: dict) -> Run:
    return Run(**{**row, "spec": json.loads(row["spec"]), "status": Status(row["status"])})


def _step(row: dict) -> Step:
    decoded = {k: json.loads(row[k]) for k in JSON_COLUMNS}
    record = json.loads(row["record"]) if row.get("record") else None
    counts = {k: row[k] or 0 for k in ("gpus", "retries", "attempt")}  # NULL in old rows
    return Step(**{**row, **decoded, **counts, "record": record, "status": Status(row["status"])})


def _plan_values(plan: StepPlan) -> list[Any]:
    return [json.dumps(v) if k in JSON_COLUMNS else v for k, v in vars(plan).items()
            if k in PLAN_COLUMNS]  # fmt: skip


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.ingest = MetricIngest(db)
        self._belongs = TTLCache(ttl_s=30.0)  # (project, run id) pairs seen to match
        self._owners = TTLCache(ttl_s=30.0)  # run id -> (project name, creator)

    # pipelines -----------------------------------------------------------------
    def save_pipeline(self, project_id: int, name: str, spec: dict, author: str) -> bool:
        """Create or replace a pipeline; True when it was new."""
        text = json.dumps(spec)
        if self.db.one(
            "SELECT id FROM pipelines WHERE project_id = ? AND name = ?", [project_id, name]
        ):
            self.db.execute(
                "UPDATE pipelines SET spec = ?, updated_at = ? WHERE project_id = ? AND name = ?",
                [text, now(), project_id, name],
            )
            return False
        self.db.execute(
            "INSERT INTO pipelines (project_id, name, spec, created_by, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [project_id, name, text, author, now(), now()],
        )
        return True

    def pipeline(self, project_id: int, name: str) -> dict:
        row = self.db.one(
            "SELECT name, spec, created_by, created_at, updated_at FROM pipelines "
            "WHERE project_id = ? AND name = ?",
            [project_id, name],
        )
        if row is None:
            raise NotFound(f"pipeline '{name}' not found")
        return {**row, "spec": json.loads(row["spec"])}

    def pipelines(self, project_id: int) -> list[dict]:
        rows = self.db.query(
            "SELECT name, spec, created_by, updated_at FROM pipelines WHERE project_id = ? "
            "ORDER BY name",
            [project_id],
        )
        return [{**r, "spec": json.loads(r["spec"])} for r in rows]

    # runs ------------------------------------------------------------------------
    def create_run(
        self,
        project_id: int,
        pipeline: str | None,
        spec: dict,
        steps: Sequence[StepPlan],
        author: str,
        rerun_of: int | None = None,
        name: str | None = None,
    ) -> int:
        """A run and its steps (all pending), in one transaction."""
        columns = ", ".join(PLAN_COLUMNS)
        marks = ",".join("?" * len(PLAN_COLUMNS))
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO runs (project_id, pipeline, status, spec, created_by, created_at, "
                "rerun_of, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [project_id, pipeline, Status.QUEUED, json.dumps(spec), author, now(), rerun_of,
                 name],
            )  # fmt: skip
            run_id = fetched(cur.fetchone())[0]
            for pos, s in enumerate(steps):
                cur.execute(
                    f"INSERT INTO steps (run_id, position, status, {columns}) "
                    f"VALUES (?, ?, ?, {marks})",
                    [run_id, pos, Status.PENDING, *_plan_values(s)],
                )
                _put_params(cur, run_id, s.name, s.params, replace=False)  # to filter by
        return int(run_id)

    def create_script_run(
        self,
        project_id: int,
        name: str | None,
        params: dict[str, Any],
        author: str,
        audit: Callable[[Any, int], None] | None = None,
    ) -> int:
        """A running run with no steps (a script reports to it) and its params, and what
        `audit(cursor, run_id)` records of it: one commit."""
        stamp = now()
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO runs (project_id, pipeline, status, spec, created_by, created_at, "
                "started_at, name) VALUES (?, NULL, ?, ?, ?, ?, ?, ?) RETURNING id",
                [project_id, Status.RUNNING, json.dumps({"steps": []}), author, stamp, stamp, name],
            )
            run_id = int(fetched(cur.fetchone())[0])
            _put_params(cur, run_id, "script", params, replace=False)
            if audit is not None:
                audit(cur, run_id)
        return run_id

    def run(self, run_id: int, project_id: int | None = None) -> Run:
        row = self.db.one("SELECT * FROM runs WHERE id = ?", [run_id])
        if row is None or (project_id is not None and row["project_id"] != project_id):
            raise NotFound(f"run {run_id} not found")
        return _run(row)

    def check_in(self, project: str, run_id: int) -> str:
        """Raise NotFound unless run `run_id` belongs to `project`; returns who created it.
        What a report to a run checks, so the answer is kept 30 s (a run never changes
        project or creator)."""
        creator = self._belongs.get((project, run_id))
        if creator is MISSING:
            creator = self._belongs.put((project, run_id), self.run_in(project, run_id).created_by)
        return creator

    def owner(self, run_id: int) -> tuple[str, str]:
        """(project name, creator) of run `run_id`, NotFound if there is none. What a write to
        a run (MLflow's log-batch, an artifact upload) checks, so the answer is kept 30 s (a
        run never changes project or creator; a deleted project's roles are gone at once)."""
        return self._owners.get_or(run_id, lambda: self._owner(run_id))

    def _owner(self, run_id: int) -> tuple[str, str]:
        row = self.db.one(
            "SELECT p.name, r.created_by FROM runs r JOIN projects p ON p.id = r.project_id "
            "WHERE r.id = ?",
            [run_id],
        )
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return row["name"], row["created_by"]

    def run_in(self, project: str, run_id: int) -> Run:
        """Run `run_id` of the project named `project`, in one query (the API's hot path)."""
        row = self.db.one(
            "SELECT r.* FROM runs r JOIN projects p ON p.id = r.project_id "
            "WHERE r.id = ? AND p.name = ?",
            [run_id, project],
        )
        if row is None:
            if self.db.one("SELECT id FROM projects WHERE name = ?", [project]) is None:
                raise NotFound(f"project '{project}' not found")
            raise NotFound(f"run {run_id} not found")
        return _run(row)

    def list_runs(self, project_id: int, limit: int = 50, offset: int = 0) -> list[Run]:
        rows = self.db.query(
            "SELECT * FROM runs WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            [project_id, limit, offset],
        )
        return [_run(r) for r in rows]

    def runs_in(self, statuses: tuple[Status, ...]) -> list[Run]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.query(f"SELECT * FROM runs WHERE status IN ({marks})", list(statuses))
        return [_run(r) for r in rows]

    def update_run(self, run_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])

    # steps -----------------------------------------------------------------------
    def steps(self, run_id: int) -> list[Step]:
        rows = self.db.query("SELECT * FROM steps WHERE run_id = ? ORDER BY position", [run_id])
        return [_step(r) for r in rows]

    def step(self, step_id: int) -> Step:
        row = self.db.one("SELECT * FROM steps WHERE id = ?", [step_id])
        if row is None:
            raise NotFound(f"step {step_id} not found")
        return _step(row)

    def steps_in(self, statuses: tuple[Status, ...]) -> list[Step]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.query(f"SELECT * FROM steps WHERE status IN ({marks})", list(statuses))
        return [_step(r) for r in rows]

    def update_step(self, step_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE steps SET {sets} WHERE id = ?", [*fields.values(), step_id])

    def move_step(self, step_id: int, old: Status, new: Status, **fields: Any) -> bool:
        """Compare-and-set a step's status; False when it was no longer `old`."""
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
        rows = self.db.execute(
            f"UPDATE steps SET {sets} WHERE id = ? AND status = ? RETURNING id",
            [new, *fields.values(), step_id, old],
        )
        return bool(rows)

    def cached_original(self, cache_key: str, exclude_run: int) -> Step | None:
        """The latest succeeded step with this cache key that really ran (not itself cached)."""
        row = self.db.one(
            "SELECT * FROM steps WHERE cache_key = ? AND status = ? "
            "AND cached_from IS NULL AND run_id <> ? ORDER BY id DESC LIMIT 1",
            [cache_key, Status.SUCCEEDED, exclude_run],
        )
        return _step(row) if row else None

    def copy_reports(self, src: Step, dst: Step) -> None:
        """What a step reported (metrics, params, artifacts), copied to a step that reuses it."""
        with self.db.transaction() as cur:
            copied = (
                "SELECT ?::BIGINT AS run_id, ?::VARCHAR AS step_name, key, value, step, ts "
                "FROM metrics WHERE run_id = ? AND step_name = ?"
            )
            ids = [dst.run_id, dst.name, src.run_id, src.name]
            points = cur.sql(copied, params=ids).to_arrow_table().cast(POINTS)
            insert_points(cur, points)
            cur.execute(
                "INSERT OR REPLACE INTO run_params SELECT ?, ?, key, value FROM run_params "
                "WHERE run_id = ? AND step = ?",
                [dst.run_id, dst.name, src.run_id, src.name],
            )
            cur.execute(
                "INSERT INTO artifacts (run_id, step_name, name, digest, size, created_at) "
                "SELECT ?, ?, name, digest, size, created_at FROM artifacts "
                "WHERE run_id = ? AND step_name = ?",
                [dst.run_id, dst.name, src.run_id, src.name],
            )
        # summarised by the fold, the one writer of run_metrics (it runs beside this lock)
        self.ingest.committed(points)

    # what steps report -----------------------------------------------------------
    def log_params(self, run_id: int, step: str, params: dict[str, Any]) -> None:
        with self.db.transaction() as cur:
            _put_params(cur, run_id, step, params)

    def params(self, run_id: int) -> list[dict]:
        rows = self.db.query(
            "SELECT step, key, value FROM run_params WHERE run_id = ? ORDER BY step, key", [run_id]
        )
        return [{**r, "value": json.loads(r["value"])} for r in rows]

    def log_metrics(self, run_id: int, step_name: str, points: list[dict]) -> int:
        """Append metric points given as rows ({key, value, step?, ts?} each)."""
        return self.log_metric_columns(run_id, step_name, rows_as_columns(points))

    def log_metric_columns(self, run_id: int, step_name: str, columns: dict[str, list]) -> int:
        """Append metric points given as columns (see `points_table`) in one bulk insert; they
        reach the run's summary (run_metrics) within a second, or at the next read of it."""
        table = points_table(run_id, step_name, columns, now())
        if table.num_rows:
            self.ingest.append(table)
        return table.num_rows

    def metric_history(self, run_id: int, times: bool = False) -> dict[str, list[tuple]]:
        """Each metric's points as (step, value), or (step, value, seconds since the epoch),
        named as `metric_labels` names them (`step/key` where several steps log the key)."""
        rows = self.db.query(
            "SELECT step_name, key, step, value, epoch_us(ts) / 1e6 AS ts FROM metrics "
            "WHERE run_id = ? ORDER BY step_name, key, step, ts",
            [run_id],
        )
        labels = metric_labels({(r["step_name"], r["key"]) for r in rows})
        out: dict[str, list[tuple]] = {}
        for r in rows:
            point = (r["step"], r["value"], r["ts"]) if times else (r["step"], r["value"])
            out.setdefault(labels[r["step_name"], r["key"]], []).append(point)
        return dict(sorted(out.items()))

    def final_metrics(self, run_id: int) -> dict[tuple[str, str], float | None]:
        """Each (step, key)'s last value, by (ts, step): what a re-run is compared on."""
        rows = self.db.query(
            "SELECT step_name, key, last(value ORDER BY ts, step) AS value FROM metrics "
            "WHERE run_id = ? GROUP BY step_name, key",
            [run_id],
        )
        return {(r["step_name"], r["key"]): r["value"] for r in rows}

    def search(self, project_id: int, q: RunQuery) -> tuple[int, list[dict[str, Any]]]:
        """The runs table: one page of a project's runs matching `q`, and the total."""
        self.settle_metrics()
        return run_search.search(self.db, project_id, q)

    def settle_metrics(self) -> None:
        """Bring run_metrics up to date with every point stored: before reading it."""
        self.ingest.settle()

    def latest_metrics(self, run_id: int) -> dict[str, float]:
        """Each metric's latest value, named as `metric_labels` names them."""
        by_step = self.step_metrics(run_id)
        labels = metric_labels(set(by_step))
        return {labels[k]: by_step[k] for k in sorted(by_step, key=labels.__getitem__)}

    def step_metrics(
        self, run_id: int, steps: list[str] | None = None
    ) -> dict[tuple[str, str], float]:
        """The latest value of each (step, key) of a run, or of the given steps only."""
        self.settle_metrics()
        rows = self.db.query(
            "SELECT step_name, key, value FROM run_metrics WHERE run_id = ? "
            "AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], step_name))",
            [run_id, steps, steps],
        )
        return {(r["step_name"], r["key"]): r["value"] for r in rows}

    def set_record(self, step_id: int, record: dict) -> None:
        self.db.execute(
            "UPDATE steps SET record = ? WHERE id = ?", [json.dumps(record, default=str), step_id]
        )

    def add_comment(self, run_id: int, author: str, text: str) -> int:
        rows = self.db.execute(
            "INSERT INTO comments (run_id, author, text, created_at) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            [run_id, author, text, now()],
        )
        return int(rows[0][0])

    def comments(self, run_id: int) -> list[dict]:
        return self.db.query(
            "SELECT id, author, text, created_at FROM comments WHERE run_id = ? ORDER BY id",
            [run_id],
        )

    def add_artifact(self, run_id: int, step: str, name: str, digest: str, size: int) -> None:
        self.db.execute(
            "INSERT INTO artifacts (run_id, step_name, name, digest, size, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, step, name, digest, size, now()],
        )

    def artifacts(self, run_id: int) -> list[dict]:
        return self.db.query(
            "SELECT id, step_name, name, digest, size, created_at FROM artifacts "
            "WHERE run_id = ? ORDER BY id",
            [run_id],
        )


def metric_labels(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """How pages and the API name a run's metrics: the bare key where one step logs it,
    `step/key` where several do (a script run's step is '', never shown)."""
    steps_of: dict[str, int] = {}
    for _, key in pairs:
        steps_of[key] = steps_of.get(key, 0) + 1
    return {
        (step, key): f"{step}/{key}" if steps_of[key] > 1 and step else key for step, key in pairs
    }


def _put_params(
    cur: Any, run_id: int, step: str, params: dict[str, Any], replace: bool = True
) -> None:
    """Insert (or replace) a step's parameters in one statement: one per key is slow, and so
    is OR REPLACE where nothing can be there yet (a new run)."""
    if not params:
        return
    rows = [[run_id, step, str(k), json.dumps(v, default=str)] for k, v in params.items()]
    marks = ", ".join(["(?, ?, ?, ?)"] * len(rows))
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    cur.execute(f"{verb} INTO run_params VALUES {marks}", [x for row in rows for x in row])
