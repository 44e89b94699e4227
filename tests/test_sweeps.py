"""Sweeps: trials as runs in parallel, ranked by a metric, with the best run linked."""

from __future__ import annotations

import time

import pytest

from conftest import login

pytestmark = pytest.mark.slow

CSV = b"a,label\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(100))


def test_a_six_trial_grid_sweep(server):
    with server.client() as client:
        client.post("/api/projects", json={"name": "sw"})
        client.post("/api/projects/sw/datasets", files={"file": ("d.csv", CSV)}, data={"name": "d"})
        steps = [{"name": "split", "module": "split", "inputs": {"data": "dataset:d"}}]
        client.post("/api/projects/sw/pipelines", json={"name": "p", "steps": steps})
        bad = client.post(
            "/api/projects/sw/pipelines/p/sweeps",
            json={"step": "split", "grid": {"test_sizes": [0.1]}, "metric": "test_rows"},
        )
        assert bad.status_code == 400 and "trial 1" in bad.json()["detail"]
        assert client.get("/api/projects/sw/runs").json() == []
        resp = client.post(
            "/api/projects/sw/pipelines/p/sweeps",
            json={
                "step": "split",
                "grid": {"test_size": [0.1, 0.2, 0.3], "seed": [0, 1]},
                "metric": "test_rows",
                "goal": "max",
            },
        )
        assert resp.status_code == 201, resp.text
        sweep = resp.json()
        assert len(sweep["runs"]) == 6
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = client.get(f"/api/projects/sw/sweeps/{sweep['id']}").json()
            if body["finished"]:
                break
            time.sleep(0.5)
    assert body["finished"] and all(t["status"] == "succeeded" for t in body["trials"])
    assert [t["metric"] for t in body["trials"]] == [30, 30, 20, 20, 10, 10]
    assert body["best"]["params"]["test_size"] == 0.3
    with server.client() as client:
        login(client)
        page = client.get(f"/projects/sw/sweeps/{sweep['id']}").text
    assert f"/projects/sw/runs/{body['best']['id']}" in page and 'id="sweep-data"' in page
