"""The runs table: filters, sorting by metrics and params, columns, paging; and comparing runs."""

from __future__ import annotations

import pytest

from conftest import api_token, login


@pytest.fixture
def runs(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "t"}, headers=headers)
    ids = []
    for i, lr in enumerate((0.1, 0.01, 0.001, 0.1, 0.05)):
        run = app_client.post(
            "/api/projects/t/runs",
            json={"name": f"r{i}", "params": {"lr": lr, "layers": i}},
            headers=headers,
        ).json()["id"]
        points = [{"key": "loss", "value": 1.0 / (s + 1 + i), "step": s} for s in range(5)]
        points.append({"key": "accuracy", "value": 0.5 + i / 10})
        app_client.post(
            f"/api/projects/t/runs/{run}/metrics",
            json={"step": "script", "points": points},
            headers=headers,
        )
        app_client.post(
            f"/api/projects/t/runs/{run}/finish",
            json={"status": "failed" if i == 2 else "succeeded"},
            headers=headers,
        )
        ids.append(run)
    return app_client, headers, ids


def get(client, headers, query: str):
    resp = client.get(f"/api/projects/t/runs?{query}", headers=headers)
    assert resp.status_code == 200, resp.text
    return int(resp.headers["x-total-count"]), resp.json()


def test_filter_by_metric_status_and_param(runs):
    client, headers, ids = runs
    total, rows = get(client, headers, "metric=accuracy>=0.7")
    assert total == 3 and {r["id"] for r in rows} == set(ids[2:])
    total, rows = get(client, headers, "status=failed")
    assert [r["id"] for r in rows] == [ids[2]]
    total, rows = get(client, headers, "param=script.lr=0.1")
    assert {r["id"] for r in rows} == {ids[0], ids[3]}


def test_sort_by_a_metric_with_chosen_columns_and_pages(runs):
    client, headers, ids = runs
    total, rows = get(
        client, headers, "sort=-metric:accuracy&columns=metric:accuracy,param:script.lr&limit=2"
    )
    assert total == 5 and [r["id"] for r in rows] == [ids[4], ids[3]]
    assert rows[0]["values"] == {"metric:accuracy": pytest.approx(0.9), "param:script.lr": 0.05}
    _, page2 = get(client, headers, "sort=-metric:accuracy&limit=2&offset=2")
    assert [r["id"] for r in page2] == [ids[2], ids[1]]
    _, by_param = get(client, headers, "sort=param:script.lr&columns=param:script.lr")
    assert [r["values"]["param:script.lr"] for r in by_param] == [0.001, 0.01, 0.05, 0.1, 0.1]


@pytest.mark.parametrize(
    "query", ["metric=accuracy~1", "param=lr", "columns=loss", "sort=metric:", "limit=0"]
)
def test_bad_queries_are_400(runs, query):
    client, headers, _ = runs
    resp = client.get(f"/api/projects/t/runs?{query}", headers=headers)
    assert resp.status_code == 400, resp.text


def test_compare_runs(runs):
    client, headers, ids = runs
    body = client.get(f"/api/projects/t/compare?ids={ids[0]},{ids[1]}", headers=headers).json()
    assert [r["id"] for r in body["runs"]] == ids[:2]
    lr = next(p for p in body["params"] if p["name"] == "script.lr")
    assert lr["values"] == [0.1, 0.01] and lr["differs"]
    assert set(body["curves"]["loss"]) == {str(ids[0]), str(ids[1])}
    assert len(body["curves"]["loss"][str(ids[0])]) == 5
    assert client.get(f"/api/projects/t/compare?ids={ids[0]}", headers=headers).status_code == 400
    login(client)
    page = client.get(f"/projects/t/compare?pick={ids[0]}&pick={ids[1]}")
    assert page.status_code == 200 and 'class="differs"' in page.text
    table = client.get("/projects/t/runs?sort=-metric:accuracy")
    assert table.status_code == 200 and f'value="{ids[4]}"' in table.text


def test_the_metric_summary_agrees_with_every_point(tmp_path):
    """run_metrics (kept on ingest) gives what a scan of all points gives per (run, step, key):
    the latest value by (time, step) with unnumbered points last, and min, max and count;
    also for copies."""
    import random
    from types import SimpleNamespace

    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS
    from reef.store.runs import Runs

    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    runs, rnd = Runs(db), random.Random(7)
    for batch in range(40):
        points = [
            {
                "key": rnd.choice("abc"),
                "value": None if rnd.random() < 0.1 else rnd.random(),
                "step": None if rnd.random() < 0.2 else rnd.randrange(50),
            }
            for _ in range(rnd.randrange(1, 30))
        ]
        runs.log_metrics(1 + batch % 3, rnd.choice(["train", "eval"]), points)
    step = SimpleNamespace
    runs.copy_reports(step(run_id=1, name="train"), step(run_id=4, name="train"))
    runs.copy_reports(step(run_id=2, name="eval"), step(run_id=4, name="eval"))
    runs.settle_metrics()
    scan, summary = scan_and_summary(db)
    assert summary == scan and {r["run_id"] for r in summary} == {1, 2, 3, 4}
    assert shared_flags(db) == shared_expected(db)
    mine = {(r["step_name"], r["key"]): r["value"] for r in scan if r["run_id"] == 1}
    assert runs.step_metrics(1) == mine
    # both steps log a, b and c: the run's metrics are named step/key
    assert runs.latest_metrics(1) == {f"{step}/{key}": v for (step, key), v in mine.items()}


def scan_and_summary(db) -> tuple[list[dict], list[dict]]:
    scan = db.query(
        "SELECT run_id, step_name, key, last(value ORDER BY ts, step) AS value, "
        "min(value) AS lo, max(value) AS hi, count(*) AS n FROM metrics GROUP BY ALL ORDER BY ALL"
    )
    summary = db.query(
        "SELECT run_id, step_name, key, value, value_min AS lo, value_max AS hi, points AS n "
        "FROM run_metrics ORDER BY ALL"
    )
    return scan, summary


def shared_flags(db) -> list[dict]:
    return db.query("SELECT run_id, step_name, key, shared FROM run_metrics ORDER BY ALL")


def shared_expected(db) -> list[dict]:
    """`shared`: another step of the run has points of the same key."""
    return db.query(
        "SELECT run_id, step_name, key, count(*) OVER (PARTITION BY run_id, key) > 1 AS shared "
        "FROM (SELECT DISTINCT run_id, step_name, key FROM metrics) ORDER BY ALL"
    )


def test_points_stored_but_not_yet_summarised_at_a_crash_are_summarised_at_start(tmp_path):
    """The summary is folded a second after the points are committed: a crash in between
    leaves it short, and the next start finds and repairs exactly those runs."""
    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS
    from reef.store.runs import Runs

    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    runs = Runs(db)
    runs.log_metrics(1, "train", [{"key": "loss", "value": 0.5, "step": 0}])
    runs.log_metrics(2, "train", [{"key": "loss", "value": 0.9, "step": 0}])
    runs.settle_metrics()
    runs.log_metrics(1, "train", [{"key": "loss", "value": 0.25, "step": 1}])
    runs.log_metrics(3, "train", [{"key": "acc", "value": 0.75, "step": 1}])
    runs.log_metrics(3, "eval", [{"key": "acc", "value": 0.5, "step": 1}])
    db.close()  # as a crash would: the last two batches were never folded

    db = Database(tmp_path / "reef.duckdb")
    runs = Runs(db)
    scan, summary = scan_and_summary(db)
    assert summary != scan
    assert sorted(runs.ingest.reconcile()) == [1, 3]
    scan, summary = scan_and_summary(db)
    assert summary == scan and len(scan) == 4
    assert shared_flags(db) == shared_expected(db)
    assert runs.latest_metrics(1) == {"loss": 0.25}
    assert runs.ingest.reconcile() == []


def test_a_rerun_diff_marks_each_difference():
    from reef.server.rerun_diff import metric_rows, record_rows

    before = {("train", "loss"): 0.5, ("eval", "acc"): 0.9, ("train", "system/cpu_percent"): 9.0}
    after = {("train", "loss"): 0.5, ("eval", "acc"): 0.875, ("eval", "f1"): None}
    rows = {(r["step"], r["key"]): r for r in metric_rows(before, after)}
    assert set(rows) == {("train", "loss"), ("eval", "acc"), ("eval", "f1")}  # system: apart
    assert rows["train", "loss"]["identical"] and rows["train", "loss"]["difference"] == 0
    assert rows["eval", "acc"]["difference"] == pytest.approx(-0.025)
    assert not rows["eval", "acc"]["identical"] and not rows["eval", "f1"]["identical"]
    old = {"commit": "a1", "seed": 7, "run_id": 1, "packages": {"numpy": "2.0", "torch": "2.13"}}
    new = {**old, "run_id": 2, "packages": {"numpy": "2.1", "torch": "2.13"}}
    assert record_rows({"train": old}, {"train": old | {"run_id": 2}}) == []
    assert record_rows({"train": old}, {"train": new}) == [
        {"step": "train", "field": "package numpy", "original": "2.0", "value": "2.1"}
    ]
    assert record_rows({"train": old}, {"train": None})[0]["field"] == "record"


def test_the_summary_migration_fills_in_runs_logged_before_it(tmp_path):
    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS

    names = [name for name, _ in MIGRATIONS]
    cut = names.index("0013_run_metrics")
    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS[:cut])
    db.execute(
        "INSERT INTO metrics VALUES (1, 's', 'loss', 0.5, 1, '2026-01-01 00:00:01'), "
        "(1, 's', 'loss', 0.25, 2, '2026-01-01 00:00:01'), "
        "(1, 's', 'loss', 0.75, NULL, '2026-01-01 00:00:00'), (2, 's', 'acc', NULL, 0, now())"
    )
    assert db.migrate(MIGRATIONS) == names[cut:]
    rows = db.query(
        "SELECT run_id, step_name, key, value, value_min, value_max, points FROM run_metrics"
    )
    assert sorted(rows, key=lambda r: r["run_id"]) == [
        {
            "run_id": 1,
            "step_name": "s",
            "key": "loss",
            "value": 0.25,
            "value_min": 0.25,
            "value_max": 0.75,
            "points": 3,
        },
        {
            "run_id": 2,
            "step_name": "s",
            "key": "acc",
            "value": None,
            "value_min": None,
            "value_max": None,
            "points": 1,
        },
    ]


def test_settle_waits_for_a_fold_in_progress(tmp_path, monkeypatch):
    """settle() returned at once when the background fold had already taken the points but
    not yet written them, so a read right after missed them. The fold is slowed here to
    widen that window."""
    import threading
    import time

    from reef.store import metric_ingest
    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS
    from reef.store.runs import Runs

    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    runs = Runs(db)
    runs.log_metrics(1, "train", [{"key": "loss", "value": 0.5, "step": 1}])
    real_fold = metric_ingest.fold
    folding = threading.Event()

    def slow_fold(cur, table):
        folding.set()
        time.sleep(0.5)
        real_fold(cur, table)

    monkeypatch.setattr(metric_ingest, "fold", slow_fold)
    background = threading.Thread(target=runs.ingest.settle)  # what the fold thread does
    background.start()
    assert folding.wait(10)
    runs.settle_metrics()  # a reader, while the background fold is writing
    count = db.scalar("SELECT count(*) FROM run_metrics WHERE run_id = 1")
    background.join()
    assert count == 1
