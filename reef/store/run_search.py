"""Finding runs: filter by status, author, pipeline, module, dataset, parameters and metrics;
sort by any column; choose the parameter and metric columns; page. All in DuckDB."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from reef.errors import InvalidInput
from reef.store.db import Database

METRIC_FILTER = re.compile(r"^([\w./-]+)\s*(>=|<=|!=|=|>|<)\s*(-?[\d.eE+-]+)$")
PARAM_FILTER = re.compile(r"^([\w-]+)\.([\w.-]+)=(.*)$")
COLUMN = re.compile(r"^(metric|param):([\w./-]+)$")
# A metric's latest value, from the per-step summary kept on ingest (never the points table),
# by the name pages show (store.runs.metric_labels): a bare KEY where one step of the run logs
# it (or the script's, step ''), STEP/KEY for one step's. Plain equalities only, which DuckDB
# pushes into the scan: working the names out per read made the runs page 2.6x slower.
BARE = (
    "(SELECT s.value FROM run_metrics s WHERE s.run_id = r.id AND s.key = ? "
    "AND (NOT s.shared OR s.step_name = ''))"
)
OF_STEP = (
    "(SELECT s.value FROM run_metrics s WHERE s.run_id = r.id AND s.step_name = ? AND s.key = ?)"
)


def latest(name: str) -> tuple[str, list[Any]]:
    """SQL (and its parameters) for the latest value of metric `name` of run `r`: KEY, or
    STEP/KEY for one step's (step names hold no '/'; keys may: train/system/cpu_percent)."""
    step, sep, key = name.partition("/")
    if not sep:
        return BARE, [name]
    return f"coalesce({BARE}, {OF_STEP})", [name, step, key]


BASE_SORTS = {
    "created": "r.id",
    "status": "r.status",
    "author": "r.created_by",
    "duration": "epoch(coalesce(r.finished_at, now()) - r.started_at)",
}


@dataclass(frozen=True)
class RunQuery:
    status: str | None = None
    author: str | None = None
    pipeline: str | None = None
    module: str | None = None  # project/module, as pinned on steps
    dataset: str | None = None  # name or name@version read by any step
    params: list[str] = field(default_factory=list)  # "step.key=value"
    metrics: list[str] = field(default_factory=list)  # "key>=0.9", "evaluate/accuracy>=0.9"
    # created, status, author, duration, metric:NAME, param:STEP.KEY (NAME: KEY or STEP/KEY)
    sort: str = "-created"
    columns: list[str] = field(default_factory=list)  # metric:NAME, param:STEP.KEY
    limit: int = 50
    offset: int = 0


def search(db: Database, project_id: int, q: RunQuery) -> tuple[int, list[dict[str, Any]]]:
    """(total matching runs, one page of them with the chosen columns' values)."""
    if not 1 <= q.limit <= 500 or q.offset < 0:
        raise InvalidInput("limit must be 1..500 and offset >= 0")
    where, params = _filters(project_id, q)
    total = db.scalar(f"SELECT count(*) FROM runs r WHERE {where}", params)
    columns = [_column(c) for c in q.columns]
    selects = [sql for sql, _ in columns]
    col_params = [p for _, ps in columns for p in ps]
    order_sql, order_params = _order(q.sort)
    rows = db.query(
        "SELECT r.id, r.name, r.pipeline, r.status, r.created_by, r.created_at, r.started_at, "
        "r.finished_at"
        + "".join(f", {s} AS c{i}" for i, s in enumerate(selects))
        + f" FROM runs r WHERE {where} ORDER BY {order_sql} LIMIT ? OFFSET ?",
        [*col_params, *params, *order_params, q.limit, q.offset],
    )
    for row in rows:
        row["values"] = {c: _decode(row.pop(f"c{i}")) for i, c in enumerate(q.columns)}
    return int(total), rows


def _filters(project_id: int, q: RunQuery) -> tuple[str, list[Any]]:
    clauses = ["r.project_id = ?"]
    params: list[Any] = [project_id]
    for column, value in (
        ("r.status", q.status),
        ("r.created_by", q.author),
        ("r.pipeline", q.pipeline),
    ):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if q.module:
        clauses.append("EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.module = ?)")
        params.append(q.module)
    if q.dataset:
        ref = f"%dataset:{q.dataset}{'' if '@' in q.dataset else '@'}%"
        clauses.append(
            "EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id "
            "AND CAST(s.inputs AS VARCHAR) LIKE ?)"
        )
        params.append(ref)
    for text in q.params:
        clauses.append(_param_clause(text, params))
    for text in q.metrics:
        clauses.append(_metric_clause(text, params))
    return " AND ".join(clauses), params


def _param_clause(text: str, params: list[Any]) -> str:
    m = PARAM_FILTER.match(text)
    if not m:
        raise InvalidInput(f"parameter filter {text!r}: use STEP.KEY=VALUE, e.g. train.lr=0.01")
    params.extend([m[1], m[2], _as_json(m[3])])
    return (
        "EXISTS (SELECT 1 FROM run_params p WHERE p.run_id = r.id AND p.step = ? "
        "AND p.key = ? AND p.value = ?)"
    )


def _metric_clause(text: str, params: list[Any]) -> str:
    m = METRIC_FILTER.match(text.strip())
    if not m:
        raise InvalidInput(f"metric filter {text!r}: use KEY OP NUMBER, e.g. accuracy>=0.9")
    sql, values = latest(m[1])
    params.extend([*values, float(m[3])])
    return f"{sql} {m[2]} ?"


def _column(text: str) -> tuple[str, list[Any]]:
    m = COLUMN.match(text)
    if not m:
        raise InvalidInput(f"column {text!r}: use metric:KEY or param:STEP.KEY")
    if m[1] == "metric":
        return latest(m[2])
    step, _, key = m[2].partition(".")
    if not key:
        raise InvalidInput(f"column {text!r}: a parameter column is param:STEP.KEY")
    return (
        "(SELECT p.value FROM run_params p WHERE p.run_id = r.id AND p.step = ? AND p.key = ?)",
        [step, key],
    )


def _order(sort: str) -> tuple[str, list[Any]]:
    desc = sort.startswith("-")
    name = sort.lstrip("-")
    direction = "DESC" if desc else "ASC"
    if name in BASE_SORTS:
        return f"{BASE_SORTS[name]} {direction} NULLS LAST, r.id DESC", []
    sql, params = _column(name)
    if name.startswith("param:"):
        sql = f"TRY_CAST({sql} AS DOUBLE) {direction} NULLS LAST, {sql}"
    return f"{sql} {direction} NULLS LAST, r.id DESC", params * (
        2 if name.startswith("param:") else 1
    )


def _as_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text))
    except json.JSONDecodeError:
        return json.dumps(text)


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
