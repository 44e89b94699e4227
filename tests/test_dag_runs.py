"""DAG execution on a real server: parallel branches, the join after both, and system
metrics sampled while steps run."""

from __future__ import annotations

import pytest

from conftest import wait_run

pytestmark = pytest.mark.slow


def test_diamond_runs_branches_in_parallel_then_the_join(server):
    steps = [
        {"name": "source", "module": "sleeper", "params": {"seconds": 0}},
        {
            "name": "left",
            "module": "relay",
            "inputs": {"data": "source.out"},
            "params": {"seconds": 2},
        },
        {
            "name": "right",
            "module": "relay",
            "inputs": {"data": "source.out"},
            "params": {"seconds": 2},
        },
        {"name": "join", "module": "merge", "inputs": {"left": "left.out", "right": "right.out"}},
    ]
    with server.client() as client:
        client.post("/api/projects", json={"name": "dag"})
        assert (
            client.post(
                "/api/projects/dag/pipelines", json={"name": "diamond", "steps": steps}
            ).status_code
            == 201
        )
        run_id = client.post(
            "/api/projects/dag/pipelines/diamond/runs", json={"cache": False}
        ).json()["id"]
        state = wait_run(client, "dag", run_id)
        history = client.get(f"/api/projects/dag/runs/{run_id}/metrics").json()
    assert state["run"]["status"] == "succeeded", state["run"]["error"]
    s = {step["name"]: step for step in state["steps"]}
    assert s["source"]["finished_at"] <= min(s["left"]["started_at"], s["right"]["started_at"])
    overlap = min(s["left"]["finished_at"], s["right"]["finished_at"]) > max(
        s["left"]["started_at"], s["right"]["started_at"]
    )
    assert overlap, "the two branches should run at the same time"
    assert s["join"]["started_at"] >= max(s["left"]["finished_at"], s["right"]["finished_at"])
    assert history["rows"] == [[None, 8.0]]  # 4 rows from each branch
    # every step logs system metrics: each step's series is STEP/system/memory_mb
    assert history["join/system/memory_mb"][0][1] > 1
    assert {k for k in history if k.endswith("/system/memory_mb")} == {
        f"{name}/system/memory_mb" for name in s
    }
