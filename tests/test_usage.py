"""Device-time accounting on a real `reef serve` told it has one GPU (--gpus 0): each step's
GPU and CPU time is recorded under the person who started the run, the usage report adds
them up (JSON, CSV and page agree), and a weekly GPU-hour quota refuses new runs. In-process:
a triggered run refused by the quota lands in the inbox, and a drift alert pauses the
pipeline that trains the model as soon as it opens."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_models import API, lab, promote, training_data  # noqa: F401

from conftest import Server, api_token, modules_dir, start_server, wait_run

P = "u"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("usage")
    server = start_server(root / "data", modules_dir(root), extra=("--gpus", "0"))
    try:
        with server.client() as admin:
            admin.post("/api/projects", json={"name": P}).raise_for_status()
            admin.post("/api/users", json={"name": "bea", "password": PASSWORD}).raise_for_status()
            body = {"user": "bea", "role": "developer"}
            admin.post(f"/api/projects/{P}/members", json=body).raise_for_status()
            steps = [
                {"name": "gpu", "module": "library/sleeper", "gpus": 1, "params": {"seconds": 0.5}},
                {"name": "cpu", "module": "library/sleeper", "params": {"seconds": 0}},
            ]
            spec = {"name": "train", "steps": steps, "cache": False}  # every run runs its steps
            admin.post(f"/api/projects/{P}/pipelines", json=spec).raise_for_status()
        yield server
    finally:
        server.stop()


def run_as(server: Server, token: str) -> dict:
    with server.client(token) as client:
        resp = client.post(f"/api/projects/{P}/pipelines/train/runs", json={})
        assert resp.status_code == 201, resp.text
        state = wait_run(client, P, resp.json()["id"])
    assert state["run"]["status"] == "succeeded", state["run"]["error"]
    return state


def test_usage_per_person_is_the_sum_of_their_steps(srv: Server) -> None:
    states = [run_as(srv, srv.token()), *(run_as(srv, srv.token("bea", PASSWORD)) for _ in "ab")]
    with srv.client() as admin:
        rep = admin.get(f"/api/projects/{P}/usage", params={"by": "person", "period": "day"})
        assert rep.status_code == 200, rep.text
        rep = rep.json()
    steps = {(s["run_id"], s["step"]): s for s in rep["steps"]}
    for state in states:  # each step's device time lies within the step's own time
        for step in state["steps"]:
            used = steps[state["run"]["id"], step["name"]]
            took = datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(
                step["started_at"]
            )
            assert 0 < used["wall_s"] <= took.total_seconds()
            assert used["cpu_s"] > 0 and used["person"] == state["run"]["created_by"]
            assert used["gpus"] == step["gpus"] and used["gpu_s"] == used["gpus"] * used["wall_s"]
    assert min(s["wall_s"] for s in rep["steps"] if s["gpus"]) >= 0.5  # it slept 0.5 s
    totals = {t["name"]: t for t in rep["totals"]}
    assert set(totals) == {"admin", "bea"}
    for person, t in totals.items():
        mine = [s for s in rep["steps"] if s["person"] == person]
        assert t["steps"] == len(mine) == (2 if person == "admin" else 4)
        assert t["gpu_hours"] == pytest.approx(sum(s["gpu_s"] for s in mine) / 3600)
        assert t["cpu_hours"] == pytest.approx(sum(s["cpu_s"] for s in mine) / 3600)


def test_csv_export_matches_the_json(srv: Server) -> None:
    with srv.client() as admin:
        if not admin.get(f"/api/projects/{P}/usage").json()["rows"]:
            run_as(srv, srv.token())
        for params in ({"by": "person", "period": "day"}, {"by": "pipeline", "period": "week"}):
            rows = admin.get(f"/api/projects/{P}/usage", params=params).json()["rows"]
            got = admin.get(f"/api/projects/{P}/usage.csv", params=params)
            assert got.headers["content-type"].startswith("text/csv")
            table = list(csv.DictReader(io.StringIO(got.text)))
            assert len(table) == len(rows) > 0
            for line, row in zip(table, rows, strict=True):
                assert line[params["period"]] == row["period"]
                assert line[params["by"]] == row["name"]
                assert float(line["gpu_hours"]) == row["gpu_hours"]
                assert float(line["cpu_hours"]) == row["cpu_hours"]
                assert int(line["steps"]) == row["steps"]
        bad = admin.get(f"/api/projects/{P}/usage", params={"by": "project"})
        assert bad.status_code == 400 and "by: 'project'" in bad.json()["detail"]
        every = admin.get("/api/usage", params={"by": "project", "period": "week"}).json()
        assert P in {t["name"] for t in every["totals"]}
        page = admin.get(f"/projects/{P}/usage", params={"by": "person", "period": "day"}).text
        assert "GPU hours</strong>: how long steps held graphics cards" in page
        assert "<svg" in page and f"/projects/{P}/usage.csv?by=person&period=day" in page
        assert f'href="/projects/{P}/usage"' in admin.get(f"/projects/{P}").text


def test_quota_refuses_a_run_with_a_clear_message(srv: Server) -> None:
    with srv.client() as admin:
        if not admin.get(f"/api/projects/{P}/quota").json()["used_gpu_hours"]:
            run_as(srv, srv.token())
        quota = f"/api/projects/{P}/quota"

        def quota_changes() -> int:
            activity = admin.get(f"/api/projects/{P}").json()["activity"]
            return sum(a["action"] == "project.quota" for a in activity)

        bad = admin.put(quota, json={"gpu_hours_per_week": -1})
        assert bad.status_code == 400 and "gpu_hours_per_week" in bad.json()["detail"]
        assert admin.get(quota).json()["gpu_hours_per_week"] is None  # nothing changed
        assert quota_changes() == 0
        with srv.client(srv.token("bea", PASSWORD)) as bea:
            assert bea.put(quota, json={"gpu_hours_per_week": 9}).status_code == 403
            set_ = admin.put(quota, json={"gpu_hours_per_week": 0.0001})
            assert set_.status_code == 200 and set_.json()["over"] is True, set_.text
            assert quota_changes() == 1  # audited
            runs_before = len(admin.get(f"/api/projects/{P}/runs").json())
            refused = bea.post(f"/api/projects/{P}/pipelines/train/runs", json={})
        assert refused.status_code == 429, refused.text
        message = refused.json()["detail"]
        assert "weekly GPU-hour quota" in message and "of 0.0001 GPU hours this week" in message
        assert "resets on Monday" in message and "00:00 UTC" in message
        assert len(admin.get(f"/api/projects/{P}/runs").json()) == runs_before
        page = admin.get(f"/projects/{P}/usage").text
        assert "New runs are refused until the quota resets on Monday" in page
        assert admin.put(quota, json={"gpu_hours_per_week": None}).json()["over"] is False
        assert admin.post(f"/api/projects/{P}/pipelines/train/runs", json={}).status_code == 201


def test_meter_counts_the_cpu_time_of_grandchildren(tmp_path: Path) -> None:
    from reef.runtime.usage import Meter

    burn = (
        "import os\nx = 0\nfor i in range(2_000_000): x += i\n"
        "t = os.times()\nprint(t.user + t.system)"
    )
    script = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn!r}])"
    with (tmp_path / "out.txt").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=out)
        meter = Meter(proc)
        assert meter.wait() == 0
    grandchild_cpu = float((tmp_path / "out.txt").read_text())
    assert meter.measured.cpu_s >= grandchild_cpu > 0
    assert meter.measured.wall_s > 0


def test_a_triggered_run_over_quota_is_refused_into_the_inbox(app_client) -> None:
    hub = app_client.app.state.hub
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": P}, headers=headers).raise_for_status()
    spec = {"name": "flow", "steps": [{"name": "s", "module": "library/sleeper",
            "params": {"seconds": 0}}]}  # fmt: skip
    app_client.post(f"/api/projects/{P}/pipelines", json=spec, headers=headers).raise_for_status()
    start = datetime(2026, 3, 2, 5, 0)
    hub.triggers.clock = lambda: start
    body = {"kind": "cron", "cron": "30 5 * * *", "timezone": "UTC"}
    resp = app_client.post(f"/api/projects/{P}/pipelines/flow/triggers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    hub.triggers.store.db.execute(
        "UPDATE pipeline_triggers SET created_at = ? WHERE id = ?", [start, resp.json()["id"]]
    )
    quota = app_client.put(f"/api/projects/{P}/quota", json={"gpu_hours_per_week": 0},
                           headers=headers)  # fmt: skip
    assert quota.status_code == 200 and quota.json()["over"], quota.text
    hub.triggers.clock = lambda: start + timedelta(minutes=31)
    assert hub.triggers.tick() == []
    event = hub.triggers.store.events(hub.projects.get(P).id, "flow")[0]
    assert event["status"] == "failed" and "weekly GPU-hour quota" in event["note"]
    inbox = app_client.get("/api/inbox", headers=headers).json()["entries"]
    refusal = [e for e in inbox if e["kind"] == "trigger.failed"]
    assert refusal and "quota resets on Monday" in refusal[0]["text"], inbox


def test_a_drift_alert_pauses_the_pipeline_when_it_opens(app_client, lab) -> None:  # noqa: F811
    promote(app_client, 1)
    spec = {"name": "retrain", "steps": [{"name": "s", "module": "library/sleeper",
            "params": {"seconds": 0}, "register": "m"}]}  # fmt: skip
    app_client.post("/api/projects/lab/pipelines", json=spec).raise_for_status()
    resp = app_client.post("/api/projects/lab/pipelines/retrain/triggers", json={"kind": "manual"})
    assert resp.status_code == 201, resp.text
    service = lab.model_service
    x = training_data(seed=4, n=300)[0]
    service.predict("lab", "m", (x + 3.0).tolist())
    service.flush()  # the log writer checks the model: its drift alert opens
    assert app_client.get(f"{API}/monitoring").json()["alerts"]
    guards = app_client.get("/api/projects/lab/pipelines/retrain/triggers").json()
    assert guards["paused"] and "model m has an open" in guards["paused_reason"], guards


def test_the_quota_form_and_the_run_form_on_pages(app_client) -> None:
    """An owner sets the quota on the usage page; a bad number is a 400 page that names the
    field and changes nothing; the Run button of an over-quota project shows the refusal."""
    from conftest import csrf, login

    login(app_client)
    hub = app_client.app.state.hub
    hub.projects.create(P, hub.admin(), "")
    spec = {"steps": [{"name": "s", "module": "library/sleeper", "params": {"seconds": 0}}]}
    hub.runs.save_pipeline(hub.projects.get(P).id, "flow", spec, "admin")
    page = app_client.get(f"/projects/{P}/usage")
    assert page.status_code == 200 and "CPU hours</strong>: how much time" in page.text
    token = csrf(page.text)
    bad = app_client.post(f"/projects/{P}/quota", data={"gpu_hours_per_week": "-2",
                                                        "_csrf_token": token})  # fmt: skip
    assert bad.status_code == 400 and "gpu_hours_per_week" in bad.text
    bad = app_client.post(f"/projects/{P}/quota", data={"gpu_hours_per_week": "lots",
                                                        "_csrf_token": token})  # fmt: skip
    assert bad.status_code == 400 and "lots" in bad.text and "is not a number" in bad.text
    assert app_client.get(f"/api/projects/{P}/quota").status_code == 401  # pages: no API
    assert not any(a["action"] == "project.quota" for a in hub.audit.list(P, limit=50))
    assert "No quota" in app_client.get(f"/projects/{P}/usage").text
    ok = app_client.post(f"/projects/{P}/quota", data={"gpu_hours_per_week": "0",
                                                       "_csrf_token": token})  # fmt: skip
    assert ok.status_code == 200 and "0 of 0 GPU hours used this week" in ok.text
    assert [a["action"] for a in hub.audit.list(P, limit=50)].count("project.quota") == 1
    run = app_client.post(f"/projects/{P}/pipelines/flow/runs", data={"_csrf_token": token})
    assert run.status_code == 429 and "weekly GPU-hour quota" in run.text
    assert hub.runs.list_runs(hub.projects.get(P).id) == []
