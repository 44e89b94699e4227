"""Device time in DuckDB: one row per step attempt (GPUs held x wall time, CPU seconds of its
process tree) with who started the run, its project, pipeline and models; totals grouped by
person, pipeline, model or project and by day or week; each project's weekly GPU-hour quota."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reef.store.db import Database, now

GROUPS = {  # what usage can be grouped by -> its SQL expression (never user text)
    "person": "u.person",
    "pipeline": "coalesce(u.pipeline, '(no pipeline)')",
    "model": "coalesce(u.models, '(no model)')",
    "project": "p.name",
}
PERIODS = {
    "day": "CAST(u.finished_at AS DATE)",
    "week": "CAST(date_trunc('week', u.finished_at) AS DATE)",  # weeks start on Monday
}
_FROM = (
    "FROM step_usage u JOIN projects p ON p.id = u.project_id WHERE (? IS NULL OR u.project_id = ?)"
)


@dataclass(frozen=True)
class StepUsage:
    """The device time of one attempt of one step."""

    step_id: int
    run_id: int
    project_id: int
    pipeline: str | None
    step_name: str
    person: str
    models: str | None
    worker: str | None
    gpus: int
    wall_s: float
    cpu_s: float
    finished_at: datetime

    @property
    def gpu_s(self) -> float:
        return self.gpus * self.wall_s


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, u: StepUsage) -> None:
        self.db.execute(
            "INSERT INTO step_usage (step_id, run_id, project_id, pipeline, step_name, person, "
            "models, worker, gpus, wall_s, gpu_s, cpu_s, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [u.step_id, u.run_id, u.project_id, u.pipeline, u.step_name, u.person, u.models,
             u.worker, u.gpus, u.wall_s, u.gpu_s, u.cpu_s, u.finished_at],
        )  # fmt: skip

    def totals(self, project_id: int | None, by: str, period: str) -> list[dict[str, Any]]:
        """Seconds of GPU, CPU and wall time and step count per (period, group), oldest
        period first. `by` and `period` are keys of GROUPS and PERIODS."""
        key, when = GROUPS[by], PERIODS[period]
        return self.db.query(
            f"SELECT {when} AS period, {key} AS name, sum(u.gpu_s) AS gpu_s, "
            f"sum(u.cpu_s) AS cpu_s, sum(u.wall_s) AS wall_s, count(*) AS steps "
            f"{_FROM} GROUP BY ALL ORDER BY period, name",
            [project_id, project_id],
        )

    def steps(self, project_id: int | None, limit: int = 500) -> list[dict[str, Any]]:
        """The latest step rows, newest first."""
        return self.db.query(
            "SELECT p.name AS project, u.run_id, u.step_name AS step, u.person, u.pipeline, "
            "u.models, u.worker, u.gpus, u.wall_s, u.gpu_s, u.cpu_s, u.finished_at "
            f"{_FROM} ORDER BY u.finished_at DESC, u.id DESC LIMIT ?",
            [project_id, project_id, limit],
        )

    def gpu_seconds_since(self, project_id: int, since: datetime) -> float:
        return float(
            self.db.scalar(
                "SELECT coalesce(sum(gpu_s), 0) FROM step_usage "
                "WHERE project_id = ? AND finished_at >= ?",
                [project_id, since],
            )
        )

    # quota -------------------------------------------------------------------------------
    def quota(self, project_id: int) -> float | None:
        """The project's weekly GPU-hour quota; None: no quota."""
        return self.db.scalar(
            "SELECT gpu_hours_per_week FROM usage_quotas WHERE project_id = ?", [project_id]
        )

    def set_quota(self, project_id: int, hours: float | None, who: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM usage_quotas WHERE project_id = ?", [project_id])
            if hours is not None:
                cur.execute(
                    "INSERT INTO usage_quotas VALUES (?, ?, ?, ?)", [project_id, hours, who, now()]
                )
