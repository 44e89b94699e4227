"""The step sandbox on a real server: a hostile step (tests/modules/escape) tries to read the
server's files and other projects' data, to write outside its dirs and to connect to a port
other than the server's; each attempt fails while its SDK calls still reach the server."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest

from conftest import start_server, wait_run
from reef.runtime import landlock

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4"),
]


def run_pipeline(client: httpx.Client, project: str, name: str, steps: list[dict]) -> dict:
    resp = client.post(f"/api/projects/{project}/pipelines", json={"name": name, "steps": steps})
    assert resp.status_code == 201, resp.text
    run = client.post(f"/api/projects/{project}/pipelines/{name}/runs", json={"cache": False})
    return wait_run(client, project, run.json()["id"])


def upload(client: httpx.Client, project: str, name: str) -> None:
    body = b"a,b\n1,2\n3,4\n"
    files = {"file": (f"{name}.csv", body, "text/csv")}
    resp = client.post(
        f"/api/projects/{project}/datasets", files=files, data={"name": name, "message": "m"}
    )
    assert resp.status_code in (200, 201), resp.text


@pytest.fixture(scope="module")
def escaped(tmp_path_factory) -> tuple[dict, dict, str]:
    """One escape run; (its state, its metrics, its log)."""
    from conftest import modules_dir

    root = tmp_path_factory.mktemp("sandbox")
    server = start_server(root / "data", modules_dir(root))
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with server.client() as client:
            for project in ("secret-project", "attacker"):
                client.post("/api/projects", json={"name": project})
            upload(client, "secret-project", "payroll")
            source = {"name": "source", "module": "sleeper", "params": {"seconds": 0}}
            other = run_pipeline(client, "secret-project", "other", [source])
            other_run = other["run"]["id"]
            data = server.data
            probes = {
                "read": {
                    "duckdb": str(data / "reef.duckdb"),
                    "secret": str(data / "secret"),
                    "datasets": str(data / "datasets"),
                    "other_dataset": str(data / "datasets" / "secret-project" / "payroll.lance"),
                    "git": str(data / "git"),
                    "artifacts": str(data / "blobs"),
                    "runs": str(data / "runs"),
                    "other_run_work": str(data / "runs" / str(other_run) / "source" / "work"),
                    "other_run_output": str(
                        data / "runs" / str(other_run) / "source" / "outputs" / "out.parquet"
                    ),
                    "repo_checkout": str(os.getcwd()),
                    "server_environ": f"/proc/{server.proc.pid}/environ",  # its admin password
                    "server_cwd": f"/proc/{server.proc.pid}/cwd",
                },
                "write": {
                    "data_dir": str(data / "planted.txt"),
                    "shared_tmp": "/tmp/reef-sandbox-escape.txt",
                    "other_run_work": str(
                        data / "runs" / str(other_run) / "source" / "work" / "planted.txt"
                    ),
                },
                "connect": {"other_port": listener.getsockname()[1]},
            }
            steps = [
                {**source, "name": "source"},
                {
                    "name": "escape",
                    "module": "escape",
                    "inputs": {"data": "source.out"},
                    "params": {"probes": json.dumps(probes)},
                },
            ]
            state = run_pipeline(client, "attacker", "escape", steps)
            run_id = state["run"]["id"]
            metrics = client.get(f"/api/projects/attacker/runs/{run_id}/metrics").json()
            logs = client.get(f"/api/projects/attacker/runs/{run_id}/logs?step=escape").json()
    finally:
        listener.close()
        server.stop()
    return state, metrics, logs["text"]


def reached(metrics: dict, prefix: str) -> dict[str, float]:
    return {
        k.removeprefix("reached."): v[-1][1]
        for k, v in metrics.items()
        if k.startswith(f"reached.{prefix}")
    }


def test_the_step_ran_and_reported_through_the_sdk(escaped):
    state, metrics, log = escaped
    assert state["run"]["status"] == "succeeded", (state["run"]["error"], log)
    assert reached(metrics, "allowed") == {
        "allowed.input": 1.0,
        "allowed.work": 1.0,
        "allowed.tmp": 1.0,
        "allowed.tmp_is_private": 1.0,
    }


@pytest.mark.parametrize("kind", ["read", "symlink", "write", "connect"])
def test_every_forbidden_attempt_failed(escaped, kind):
    _, metrics, log = escaped
    attempts = reached(metrics, kind)
    assert len(attempts) >= 1
    assert {k: v for k, v in attempts.items() if v} == {}, log
    assert "Permission denied" in log


def test_a_root_server_runs_steps_as_another_user(escaped):
    _, metrics, _ = escaped
    assert metrics["reached.uid_is_root"][-1][1] == 0.0


def test_unsafe_steps_runs_unsandboxed_and_every_page_warns(tmp_path):
    from conftest import modules_dir

    server = start_server(tmp_path / "data", modules_dir(tmp_path), extra=("--unsafe-steps",))
    try:
        page = httpx.get(f"{server.url}/login")
        assert "without a sandbox" in page.text
        with server.client() as client:
            client.post("/api/projects", json={"name": "lab"})
            step = {"name": "nap", "module": "sleeper", "params": {"seconds": 0}}
            state = run_pipeline(client, "lab", "nap", [step])
            record = client.get(f"/api/projects/lab/runs/{state['run']['id']}/record").json()
        assert state["run"]["status"] == "succeeded"
        assert record["steps"][0]["sandbox"] == {"enabled": False}
    finally:
        server.stop()
