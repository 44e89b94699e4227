"""Metrics belong to steps: the per-step summary, labels, and the migrations that moved the
run-level summary and the registry's versions onto steps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from reef.store.db import Database
from reef.store.migrations import MIGRATIONS

T0 = datetime(2026, 1, 1)


def _migrated_until(path, name: str) -> Database:
    db = Database(path)
    names = [n for n, _ in MIGRATIONS]
    db.migrate(MIGRATIONS[: names.index(name)])
    return db


def _step(db: Database, run_id: int, name: str, position: int, inputs: dict) -> None:
    outputs = {"model": "model"} if "train" in inputs else {}
    db.execute(
        "INSERT INTO steps (run_id, name, position, module, commit_sha, params, inputs, outputs, "
        "status, timeout_s) VALUES (?, ?, ?, 'library/x', 'abc', '{}', ?, ?, 'succeeded', 60)",
        [run_id, name, position, json.dumps(inputs), json.dumps(outputs)],
    )


def _point(db: Database, run_id: int, step: str, key: str, value: float, seconds: int) -> None:
    db.execute(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, NULL, ?)",
        [run_id, step, key, value, T0 + timedelta(seconds=seconds)],
    )


def _version(db: Database, version: int, run_id: int, step: str) -> None:
    stale = json.dumps({"accuracy": 0.9811})  # what the run-level summary gave every version
    db.execute(
        "INSERT INTO model_versions (model_id, version, run_id, step_name, onnx_digest, schema, "
        "parity_max_diff, metrics, lineage, created_by, created_at) "
        "VALUES (1, ?, ?, ?, 'd', '{}', 0, ?, '{}', 'admin', ?)",
        [version, run_id, step, stale, T0],
    )


def test_migrations_key_the_summary_by_step_and_correct_versions(tmp_path):
    db = _migrated_until(tmp_path / "reef.duckdb", "0070_run_metrics_per_step")
    for name, position, inputs in [
        ("split", 0, {"data": "dataset:wine@1"}),
        ("mlp", 1, {"train": "split.train"}),
        ("boost", 2, {"train": "split.train"}),
        ("eval-mlp", 3, {"model": "mlp.model", "test": "split.test"}),
        ("eval-boost", 4, {"model": "boost.model", "test": "split.test"}),
        ("tune", 5, {"model": "mlp.model", "train": "split.train"}),  # no evaluator: a model
    ]:
        _step(db, 7, name, position, inputs)
    _point(db, 7, "mlp", "loss", 0.5, 1)
    _point(db, 7, "boost", "loss", 0.3, 2)
    _point(db, 7, "eval-boost", "accuracy", 0.9434, 3)
    _point(db, 7, "mlp", "accuracy", 0.99, 3)  # a training accuracy: the evaluator's wins
    _point(db, 7, "eval-mlp", "accuracy", 0.9811, 4)
    _point(db, 7, "tune", "accuracy", 0.5, 5)
    _version(db, 1, 7, "mlp")
    _version(db, 2, 7, "boost")
    _version(db, 3, 99, "gone")  # its run's steps are not there: metrics unknown
    db.migrate(MIGRATIONS)

    summary = db.query("SELECT step_name, key, shared FROM run_metrics ORDER BY step_name, key")
    assert [(r["step_name"], r["key"], r["shared"]) for r in summary] == [
        ("boost", "loss", True),
        ("eval-boost", "accuracy", True),
        ("eval-mlp", "accuracy", True),
        ("mlp", "accuracy", True),
        ("mlp", "loss", True),
        ("tune", "accuracy", True),
    ]
    rows = {
        r["version"]: r
        for r in db.query("SELECT version, metrics, metrics_from FROM model_versions")
    }
    assert json.loads(rows[1]["metrics"]) == {"accuracy": 0.9811, "loss": 0.5}
    assert json.loads(rows[1]["metrics_from"]) == ["mlp", "eval-mlp"]
    assert json.loads(rows[2]["metrics"]) == {"accuracy": 0.9434, "loss": 0.3}
    assert json.loads(rows[2]["metrics_from"]) == ["boost", "eval-boost"]
    assert json.loads(rows[3]["metrics"]) == {} and rows[3]["metrics_from"] is None
