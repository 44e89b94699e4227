"""Sweeps: the stored search (pipeline, step, space, metrics) and its trials' values."""

from __future__ import annotations

import json
from typing import Any

from reef.errors import NotFound
from reef.store.db import Database, now
from reef.store.run_search import latest


def create(db: Database, project_id: int, pipeline: str, spec: dict, author: str) -> int:
    rows = db.execute(
        "INSERT INTO sweeps (project_id, pipeline, spec, created_by, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        [project_id, pipeline, json.dumps(spec), author, now()],
    )
    return int(rows[0][0])


def get(db: Database, project_id: int, sweep_id: int) -> dict[str, Any]:
    row = db.one("SELECT * FROM sweeps WHERE id = ? AND project_id = ?", [sweep_id, project_id])
    if row is None:
        raise NotFound(f"sweep {sweep_id} not found")
    return {**row, "spec": json.loads(row["spec"])}


def trials(db: Database, sweep_id: int, metric: str, test_metric: str | None) -> list[dict]:
    """Each trial run's status, the latest value of the metric it is ranked on (`metric`) and
    of the one reported beside it (`test`), both named as pages name them (KEY or STEP/KEY).
    Read from the per-step summary: settle it first."""
    (ranked, ranked_params), (test, test_params) = latest(metric), latest(test_metric or "")
    return db.query(
        f"SELECT r.id, r.status, {ranked} AS metric, {test} AS test FROM runs r "
        "WHERE r.sweep_id = ? ORDER BY r.id",
        [*ranked_params, *test_params, sweep_id],
    )
