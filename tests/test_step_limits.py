"""What a step may ask of the scheduler: a memory limit, automatic retries (also after a
crash), and a run priority that orders the queue."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_run_control import step_processes, wait_step_running

from conftest import modules_dir, patience, start_server, wait_run

pytestmark = pytest.mark.slow


def start(client, name: str, steps: list[dict], **body) -> int:
    client.post("/api/projects", json={"name": "ops"})
    resp = client.post("/api/projects/ops/pipelines", json={"name": name, "steps": steps})
    assert resp.status_code == 201, resp.text
    resp = client.post(f"/api/projects/ops/pipelines/{name}/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_a_step_over_its_memory_limit_is_killed(shared_server):
    hog = {"name": "hog", "module": "hog", "params": {"mb": 900, "seconds": 60}}
    with shared_server.client() as client:
        run_id = start(client, "greedy", [{**hog, "memory_mb": 300}])
        state = wait_run(client, "ops", run_id, timeout=60)
        step = state["steps"][0]
        assert state["run"]["status"] == "failed"
        assert step["error"].startswith("memory limit of 300 MiB exceeded (its processes held ")
        assert not step_processes(step["id"], shared_server)
        modest = start(client, "modest", [{**hog, "params": {"mb": 50, "seconds": 0}}])
        assert wait_run(client, "ops", modest)["run"]["status"] == "succeeded"


def test_memory_and_retries_are_checked_before_anything_runs(shared_server):
    # a project of its own: the shared server holds the runs of the other tests
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "checks"})
        for step, message in [
            ({"memory_mb": 2**23}, "needs 8388608 MiB of memory; this machine has"),
            ({"memory_mb": "lots"}, "memory_mb must be a whole number of MiB"),
            ({"retries": 11}, "retries must be a whole number from 0 to 10"),
        ]:
            spec = {"name": "bad", "steps": [{"name": "s", "module": "sleeper", **step}]}
            resp = client.post("/api/projects/checks/pipelines", json=spec)
            assert resp.status_code == 400 and message in resp.json()["detail"], resp.text
        spec = {"name": "ok", "steps": [{"name": "s", "module": "sleeper"}]}
        assert client.post("/api/projects/checks/pipelines", json=spec).status_code == 201
        resp = client.post("/api/projects/checks/pipelines/ok/runs", json={"priority": 1000})
        assert resp.status_code == 400 and "'priority' must be" in resp.json()["detail"]
        assert client.get("/api/projects/checks/runs").json() == []


def test_a_failed_step_is_retried_and_the_log_says_why(shared_server, tmp_path: Path):
    marker = f"failed-once-{tmp_path.name}"  # in the step's private temp dir
    step = {
        "name": "sleep",
        "module": "sleeper",
        "retries": 2,
        "params": {"fail": True, "marker": marker},
    }
    with shared_server.client() as client:
        run_id = start(client, "flaky", [step])
        state = wait_run(client, "ops", run_id)
        assert state["run"]["status"] == "succeeded", state
        assert state["steps"][0]["attempt"] == 1
        log = client.get(f"/api/projects/ops/runs/{run_id}/logs?step=sleep").json()["text"]
    assert "reef: attempt 1 failed: exited with code 3" in log
    assert "reef: retrying (1 of 2 retries)" in log
    assert log.splitlines().count("sleeper: started") == 2 and "marker found" in log


def test_retries_used_up_fail_the_step_saying_how_many(shared_server):
    step = {"name": "sleep", "module": "sleeper", "retries": 1, "params": {"fail": True}}
    with shared_server.client() as client:
        state = wait_run(client, "ops", start(client, "hopeless", [step]))
    assert state["run"]["status"] == "failed"
    assert state["steps"][0]["error"].endswith("(attempt 2 of 2)")


def test_a_step_with_retries_runs_again_after_a_crash(server, tmp_path: Path):
    marker = f"crashed-once-{tmp_path.name}"
    step = {
        "name": "sleep",
        "module": "sleeper",
        "retries": 1,
        "params": {"seconds": 120, "marker": marker},
    }
    with server.client() as client:
        run_id = start(client, "sturdy", [step])
        first = wait_step_running(client, run_id)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + patience(10)
    while step_processes(first["id"], server) and time.monotonic() < deadline:
        time.sleep(0.1)
    restarted = start_server(server.data, server.data.parent / "modules")
    try:
        with restarted.client() as client:
            state = wait_run(client, "ops", run_id)
            log = client.get(f"/api/projects/ops/runs/{run_id}/logs?step=sleep").json()["text"]
    finally:
        restarted.stop()
    assert state["run"]["status"] == "succeeded", state
    assert state["steps"][0]["attempt"] == 1
    assert "attempt 1 failed: reef stopped while this step was running" in log


def test_higher_priority_runs_leave_the_queue_first(tmp_path: Path):
    srv = start_server(tmp_path / "data", modules_dir(tmp_path), extra=("--workers", "1"))
    quick = {"name": "sleep", "module": "sleeper", "params": {"seconds": 0}}
    try:
        with srv.client() as client:
            blocker = start(client, "blocker", [{**quick, "params": {"seconds": 3}}])
            wait_step_running(client, blocker)
            low = [start(client, f"low{i}", [quick], priority=-5) for i in range(2)]
            high = start(client, "high", [quick], priority=5)
            started = {
                run_id: wait_run(client, "ops", run_id)["steps"][0]["started_at"]
                for run_id in [*low, high]
            }
    finally:
        srv.stop()
    assert started[high] < min(started[run_id] for run_id in low)


def test_cpu_steps_caps_cpu_only_steps_running_at_once(tmp_path: Path):
    extra = ("--workers", "3", "--cpu-steps", "1")
    srv = start_server(tmp_path / "data", modules_dir(tmp_path), extra=extra)
    nap = {"name": "sleep", "module": "sleeper", "params": {"seconds": 1.5}}
    try:
        with srv.client() as client:
            runs = [start(client, f"nap{i}", [nap]) for i in range(2)]
            steps = sorted(
                (wait_run(client, "ops", r)["steps"][0] for r in runs),
                key=lambda s: s["started_at"],
            )
    finally:
        srv.stop()
    assert all(s["status"] == "succeeded" for s in steps)
    assert steps[1]["started_at"] >= steps[0]["finished_at"]
