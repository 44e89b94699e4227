"""Steps as child processes: failure, time limit, cancel, crash recovery, clean shutdown."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest

from conftest import patience, start_server, wait_run

pytestmark = pytest.mark.slow


def step_processes(step_id: int, server) -> list[psutil.Process]:
    """Live processes of one server's step (REEF_STEP_ID and REEF_URL in their environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            mine = env.get("REEF_STEP_ID") == str(step_id) and env.get("REEF_URL") == server.url
            if mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def start_sleeper(client, name: str = "nap", **params) -> int:
    step = {"name": "sleep", "module": "sleeper", "params": params}
    if "timeout_s" in params:
        step["timeout_s"] = params.pop("timeout_s")
    after = {
        "name": "after",
        "module": "split",
        "inputs": {"data": "sleep.out"},
        "params": {"test_size": 0.5},
    }
    spec = {"name": name, "steps": [step, after]}
    client.post("/api/projects", json={"name": "ops"})
    resp = client.post("/api/projects/ops/pipelines", json=spec)
    assert resp.status_code == 201, resp.text
    return client.post(f"/api/projects/ops/pipelines/{name}/runs", json={}).json()["id"]


def wait_step_running(client, run_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        steps = client.get(f"/api/projects/ops/runs/{run_id}").json()["steps"]
        step = steps[0]
        if step["status"] == "running" and step["pid"]:
            logs = client.get(f"/api/projects/ops/runs/{run_id}/logs?step=sleep").json()
            if "started" in logs["text"]:
                return step
        time.sleep(0.1)
    raise TimeoutError("the step did not start")


def test_failing_step_fails_the_run_with_its_log(shared_server):
    with shared_server.client() as client:
        run_id = start_sleeper(client, fail=True)
        state = wait_run(client, "ops", run_id)
    assert state["run"]["status"] == "failed"
    sleep = state["steps"][0]
    assert sleep["exit_code"] == 3
    assert "exited with code 3" in sleep["error"] and "failing on purpose" in sleep["error"]
    assert "step 'sleep'" in state["run"]["error"]


def test_time_limit_kills_the_step(shared_server):
    with shared_server.client() as client:
        run_id = start_sleeper(client, seconds=60, timeout_s=1)
        state = wait_run(client, "ops", run_id, timeout=30)
    assert state["run"]["status"] == "failed"
    assert state["steps"][0]["error"] == "time limit of 1 s exceeded"
    assert not step_processes(state["steps"][0]["id"], shared_server)


def test_cancel_kills_the_process_tree(shared_server):
    with shared_server.client() as client:
        run_id = start_sleeper(client, seconds=60)
        step = wait_step_running(client, run_id)
        resp = client.post(f"/api/projects/ops/runs/{run_id}/cancel")
        assert resp.status_code == 200
        state = wait_run(client, "ops", run_id, timeout=30)
        assert state["run"]["status"] == "cancelled"
        assert [s["status"] for s in state["steps"]] == ["cancelled", "cancelled"]
        assert [s["error"] for s in state["steps"]] == ["cancelled by admin"] * 2
        assert "cancelled by admin" in client.get(f"/projects/ops/runs/{run_id}").text
        assert not step_processes(step["id"], shared_server)
        again = client.post(f"/api/projects/ops/runs/{run_id}/cancel")
        assert again.status_code == 409


def test_sigkill_while_a_step_runs_then_restart(server):
    with server.client() as client:
        run_id = start_sleeper(client, seconds=120)
        step = wait_step_running(client, run_id)
        datasets_before = client.get("/api/projects/ops").json()["pipelines"]
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + patience(10)
    while step_processes(step["id"], server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not step_processes(step["id"], server), "the step outlived the server"
    restarted = start_server(server.data, server.data.parent / "modules")
    try:
        with restarted.client() as client:
            state = client.get(f"/api/projects/ops/runs/{run_id}").json()
            assert state["run"]["status"] == "failed"
            assert state["steps"][0]["status"] == "failed"
            assert "reef stopped while this step was running" in state["steps"][0]["error"]
            assert state["steps"][1]["status"] == "skipped"
            assert client.get("/api/projects/ops").json()["pipelines"] == datasets_before
            fresh = start_sleeper(client, name="nap2", seconds=0)
            assert wait_run(client, "ops", fresh)["run"]["status"] == "succeeded"
    finally:
        restarted.stop()
    assert not step_processes(step["id"], server)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_serve_cleanly_and_kill_steps(server, sig):
    with server.client() as client:
        run_id = start_sleeper(client, seconds=120)
        step = wait_step_running(client, run_id)
    started = time.monotonic()
    assert server.stop(sig, timeout=30) == 0, server.output()
    assert time.monotonic() - started < patience(20)
    assert not step_processes(step["id"], server)
    assert os.path.exists(server.data / "reef.duckdb")
    restarted = start_server(server.data, server.data.parent / "modules")
    try:
        with restarted.client() as client:
            state = client.get(f"/api/projects/ops/runs/{run_id}").json()
            assert state["run"]["status"] == "failed"
            assert "reef stopped" in state["steps"][0]["error"]
    finally:
        restarted.stop()


def test_missing_requirements_fail_fast_with_the_list(shared_server):
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "ops"})
        spec = {"name": "needy", "steps": [{"name": "needy", "module": "needs-missing"}]}
        assert client.post("/api/projects/ops/pipelines", json=spec).status_code == 201
        run_id = client.post("/api/projects/ops/pipelines/needy/runs", json={}).json()["id"]
        state = wait_run(client, "ops", run_id)
    error = state["steps"][0]["error"]
    assert state["run"]["status"] == "failed"
    assert "surely-not-installed-package>=1.0 (not installed)" in error
    assert "numpy<1.0 (installed: " in error
    assert "numpy>=1.0 (" not in error  # the requirement that is met is not listed
    assert state["steps"][0]["pid"] is None


def test_live_log_stream_sends_each_line_once_then_done(shared_server):
    with shared_server.client() as client:
        run_id = start_sleeper(client, seconds=1.5)
        wait_step_running(client, run_id)
        token = client.headers["authorization"]
        events: list[tuple[str, str]] = []
        with httpx.stream(
            "GET",
            f"{shared_server.url}/projects/ops/runs/{run_id}/logs/stream",
            headers={"Authorization": token},
            timeout=60,
        ) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((event, line.split(":", 1)[1].strip()))
                    if event == "done":
                        break
    text = "\n".join(data for name, data in events if name == "log-sleep")
    assert text.count("sleeper: started") == 1 and text.count("sleeper: woke up") == 1
    assert events[-1] == ("done", "succeeded")


def test_a_restart_kills_only_its_own_orphans(server, tmp_path):
    """Another reef on the machine has step ids of its own: recovering step 1 here must not
    kill the other server's step 1."""
    other = start_server(tmp_path / "other-data", tmp_path / "modules")
    try:
        with other.client() as client:
            theirs = wait_step_running(client, start_sleeper(client, seconds=120))
        with server.client() as client:
            ours = wait_step_running(client, start_sleeper(client, seconds=120))
        assert theirs["id"] == ours["id"]
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        restarted = start_server(server.data, server.data.parent / "modules")
        restarted.stop()
        assert step_processes(theirs["id"], other), "a restart elsewhere killed this step"
    finally:
        other.stop()


def test_cancel_a_run_whose_step_is_still_queued(tmp_path):
    """With no consumer (`--workers 0`), the step stays queued: cancelling revokes its queue
    task (this was a 500: the revoke was asked of the task, not of the queue)."""
    from test_accounts import make_app

    from conftest import api_token

    with make_app(tmp_path) as client:
        client.headers.update(api_token(client))
        run_id = start_sleeper(client, seconds=60)
        state = client.get(f"/api/projects/ops/runs/{run_id}").json()
        assert state["steps"][0]["status"] == "queued"
        resp = client.post(f"/api/projects/ops/runs/{run_id}/cancel")
        assert resp.status_code == 200, resp.text
        state = client.get(f"/api/projects/ops/runs/{run_id}").json()
        assert state["run"]["status"] == "cancelled"
        assert [s["status"] for s in state["steps"]] == ["cancelled", "cancelled"]
