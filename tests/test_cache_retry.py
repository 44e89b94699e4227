"""Caching identical steps, turning it off per run, and retrying a failed step."""

from __future__ import annotations

import pytest

from conftest import wait_run

pytestmark = pytest.mark.slow

CSV = b"a,b,label\n" + b"".join(f"{i},{(i * 7) % 11},{i % 2}\n".encode() for i in range(80))


def pipeline(client, fail: bool = False) -> None:
    client.post("/api/projects", json={"name": "c"})
    client.post("/api/projects/c/datasets", files={"file": ("d.csv", CSV)}, data={"name": "d"})
    steps = [
        {"name": "split", "module": "split", "inputs": {"data": "dataset:d"}},
        {"name": "nap", "module": "sleeper", "params": {"seconds": 0, "fail": fail}},
        {
            "name": "again",
            "module": "split",
            "inputs": {"data": "nap.out"},
            "params": {"test_size": 0.5},
        },
    ]
    resp = client.post("/api/projects/c/pipelines", json={"name": "p", "steps": steps})
    assert resp.status_code == 201, resp.text


def start(client, **body) -> dict:
    run_id = client.post("/api/projects/c/pipelines/p/runs", json=body).json()["id"]
    return wait_run(client, "c", run_id)


def test_an_identical_step_is_reused_and_the_switch_turns_it_off(server):
    with server.client() as client:
        pipeline(client)
        first = start(client)
        second = start(client)
        third = start(client, cache=False)
        changed = start(client, params={"split": {"test_size": 0.3}})
    assert first["run"]["status"] == second["run"]["status"] == "succeeded"
    assert all(s["cached_from"] is None for s in first["steps"])
    originals = {s["name"]: s["id"] for s in first["steps"]}
    assert {s["name"]: s["cached_from"] for s in second["steps"]} == originals
    # two split steps log train_rows: the run names them split/train_rows, again/train_rows
    assert second["metrics"]["split/train_rows"] == first["metrics"]["split/train_rows"]
    assert second["metrics"]["again/train_rows"] == first["metrics"]["again/train_rows"]
    assert all(s["cached_from"] is None for s in third["steps"])
    reused = {s["name"]: s["cached_from"] for s in changed["steps"]}
    assert reused["split"] is None and reused["nap"] is not None
    with server.client() as client:
        log = client.get(f"/api/projects/c/runs/{second['run']['id']}/logs?step=split").json()
    assert "reused the outputs of run" in log["text"]


def test_retry_a_failed_step(server):
    with server.client() as client:
        pipeline(client, fail=True)
        failed = start(client)
        assert [s["status"] for s in failed["steps"]] == ["succeeded", "failed", "skipped"]
        run_id = failed["run"]["id"]
        early = client.post(f"/api/projects/c/runs/{run_id}/steps/split/retry")
        assert early.status_code == 409  # only failed or cancelled steps
        resp = client.post(f"/api/projects/c/runs/{run_id}/steps/nap/retry")
        assert resp.status_code == 200, resp.text
        again = wait_run(client, "c", run_id)
    # the module still fails on purpose: the step ran again and failed again
    assert again["run"]["status"] == "failed"
    assert [s["status"] for s in again["steps"]] == ["succeeded", "failed", "skipped"]
    assert again["steps"][1]["started_at"] > failed["steps"][1]["started_at"]
