"""Remote workers: a real redis-server, `reef serve --queue redis://... --workers 0` (so it runs
nothing itself) and a separate `reef worker` process that runs every step."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from conftest import (
    STEP_FLAGS,
    UNSAFE,
    free_port,
    modules_dir,
    reachable,
    start_redis,
    start_server,
    wait_run,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)


def start_worker(root: Path, server_url: str, token: str, queue: str, *extra: str) -> Worker:
    log = root / f"worker-{time.monotonic_ns()}.log"
    work = reachable(root / "worker")
    cmd = [sys.executable, "-m", "reef.cli", "worker", "--server", server_url, f"--token={token}",
           "--queue", queue, "--dir", str(work), "--gpus", "none", *STEP_FLAGS, *extra]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    return Worker(proc, log)


def wait_output(worker: Worker, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.output():
            return
        if worker.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"worker never said {text!r}:\n{worker.output()}")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    proc, url = start_redis(tmp_path)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def remote(tmp_path: Path, redis_url: str) -> Iterator[tuple]:
    """A server that runs no step itself, and one worker on the same Redis queue."""
    extra = ("--queue", redis_url, "--workers", "0", "--worker-timeout", "4")
    server = start_server(tmp_path / "data", modules_dir(tmp_path), extra=extra)
    try:
        token = server.token()
        worker = start_worker(tmp_path, server.url, token, redis_url, "--name", "box-2")
        try:
            wait_output(worker, "running steps for")
            yield server, worker, token
        finally:
            worker.stop()
    finally:
        server.stop()


def test_a_pipeline_runs_entirely_on_the_worker(remote) -> None:
    from reef.demo import DemoResult, drive
    from reef.sdk import Client

    server, worker, token = remote
    result = DemoResult()
    client = Client(server.url, token)
    drive(client, result)  # digits: split -> train (registers) -> evaluate, then predict
    assert result.ok, "\n".join(result.lines) + server.output() + worker.output()
    run = client.request("GET", f"/api/projects/demo/runs/{result.run_id}")
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 3
    assert all(s["pid"] is None for s in run["steps"])  # no step process on the server
    assert {s["worker"] for s in run["steps"]} == {"box-2"}
    page = client.http.get(f"/projects/demo/runs/{result.run_id}").text
    assert "on worker box-2" in page
    records = client.request("GET", f"/api/projects/demo/runs/{result.run_id}/record")
    assert {r["worker"] for r in records["steps"]} == {"box-2"}
    assert all(r["sandbox"]["enabled"] is not UNSAFE for r in records["steps"])  # sandboxed
    assert run["metrics"]["accuracy"] >= 0.9  # reported by the step through the SDK
    history = client.request("GET", f"/api/projects/demo/runs/{result.run_id}/metrics")
    # sampled on the worker, stored on the server (per step: STEP/system/cpu_percent)
    assert any(k.endswith("system/cpu_percent") for k in history)
    logs = client.request("GET", f"/api/projects/demo/runs/{result.run_id}/logs?step=train")
    assert logs["text"].strip()  # the step's log, shipped from the worker
    model_dir = server.data / "runs" / str(result.run_id) / "train" / "outputs" / "model"
    assert (model_dir / "model.onnx").is_file()  # uploaded to the server's data dir
    steps_dir = worker.log.parent / "worker" / "steps"
    assert not any(steps_dir.iterdir())  # the worker removes a step's work dir when done
    client.close()


def test_cancel_reaches_the_worker(remote) -> None:
    server, _, token = remote
    with server.client(token) as client:
        run_id = start_nap(client)
        queue = client.get("/api/queue").json()
        assert [s["worker"] for s in queue["running"]] == ["box-2"]
        assert "on worker box-2" in client.get("/queue").text
        assert client.post(f"/api/projects/ops/runs/{run_id}/cancel").status_code == 200
        final = wait_run(client, "ops", run_id, timeout=30)
    assert final["run"]["status"] == "cancelled"
    assert final["steps"][0]["error"] == "cancelled by admin"  # the status says what, this who


def test_a_worker_that_dies_fails_its_step(remote) -> None:
    server, worker, token = remote
    with server.client(token) as client:
        run_id = start_nap(client)
        worker.stop(signal.SIGKILL)  # its step dies with it (parent-death signal)
        final = wait_run(client, "ops", run_id, timeout=60)
    assert final["run"]["status"] == "failed"
    assert "worker box-2 stopped answering" in final["steps"][0]["error"]


def test_a_step_taken_from_a_silent_worker_is_stopped_there(remote) -> None:
    server, worker, token = remote
    with server.client(token) as client:
        run_id = start_nap(client)
        step_id = client.get(f"/api/projects/ops/runs/{run_id}").json()["steps"][0]["id"]
        worker.proc.send_signal(signal.SIGSTOP)  # silent, but its step process sleeps on
        try:
            final = wait_run(client, "ops", run_id, timeout=60)
            assert step_alive(step_id, server.url)
        finally:
            worker.proc.send_signal(signal.SIGCONT)
    assert "stopped answering" in final["steps"][0]["error"]
    deadline = time.monotonic() + 20  # its next call tells it the step is no longer its own
    while step_alive(step_id, server.url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not step_alive(step_id, server.url), worker.output()


def test_a_step_needing_more_gpus_than_the_worker_lends_fails(remote) -> None:
    server, _, token = remote
    with server.client(token) as client:
        client.post("/api/projects", json={"name": "ops"})
        spec = {"name": "big", "steps": [{"name": "sleep", "module": "sleeper", "gpus": 8}]}
        assert client.post("/api/projects/ops/pipelines", json=spec).status_code == 201
        started = client.post("/api/projects/ops/pipelines/big/runs", json={})
        assert started.status_code == 201, started.text  # the server lends none; a worker may
        final = wait_run(client, "ops", started.json()["id"], timeout=30)
    assert final["steps"][0]["status"] == "failed"
    assert final["steps"][0]["error"] == "needs 8 GPU(s); worker box-2 lends 0"


def step_alive(step_id: int, url: str) -> bool:
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if env.get("REEF_STEP_ID") == str(step_id) and env.get("REEF_URL") == url:
                return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return False


def start_nap(client, timeout: float = 60) -> int:
    """A run of one long sleeper step, once its log (shipped by the worker) says it started."""
    client.post("/api/projects", json={"name": "ops"})
    spec = {"name": "nap", "steps": [{"name": "sleep", "module": "sleeper"}]}
    assert client.post("/api/projects/ops/pipelines", json=spec).status_code == 201
    run_id = client.post("/api/projects/ops/pipelines/nap/runs", json={}).json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = client.get(f"/api/projects/ops/runs/{run_id}/logs?step=sleep").json()
        if "sleeper: started" in logs["text"]:
            return run_id
        time.sleep(0.2)
    raise TimeoutError("the sleeper step never started")


def test_a_bad_token_is_refused(tmp_path: Path, redis_url: str) -> None:
    server = start_server(tmp_path / "data", extra=("--queue", redis_url, "--workers", "0"))
    try:
        worker = start_worker(tmp_path, server.url, "not-a-token", redis_url)
        assert worker.proc.wait(30) == 2
        assert "the bearer token is unknown or revoked" in worker.output()
        with server.client() as client:  # a run's step token is no worker token either
            assert client.get("/api/worker/hello").json()["user"] == "admin"
    finally:
        server.stop()


def test_an_unreachable_queue_is_a_clear_error(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    cmd = [sys.executable, "-m", "reef.cli", "serve", "--data", str(tmp_path / "data"),
           "--port", str(free_port()), "--queue", dead]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot reach the queue at {dead}" in done.stderr
    cmd = [sys.executable, "-m", "reef.cli", "serve", "--data", str(tmp_path / "data"),
           "--queue", "amqp://nope"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must be 'sqlite' or a redis:// URL" in done.stderr
