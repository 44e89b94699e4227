"""Sweeps: trials as runs in parallel, ranked by a metric, with the best run linked."""

from __future__ import annotations

import time

import pytest

from conftest import csrf, login, patience
from reef.errors import InvalidInput
from reef.server.sweeps import form_sweep

pytestmark = pytest.mark.slow

CSV = b"a,label\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(100))


def split_pipeline(client) -> None:
    """Project sw, dataset d, pipeline p: one split step (fast, with a test_rows metric)."""
    client.post("/api/projects", json={"name": "sw"})
    client.post("/api/projects/sw/datasets", files={"file": ("d.csv", CSV)}, data={"name": "d"})
    steps = [{"name": "split", "module": "split", "inputs": {"data": "dataset:d"}}]
    client.post("/api/projects/sw/pipelines", json={"name": "p", "steps": steps})


def test_a_six_trial_grid_sweep(server):
    with server.client() as client:
        split_pipeline(client)
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
        deadline = time.monotonic() + patience(120)
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


def test_the_form_reads_lists_and_ranges():
    body = form_sweep(
        {
            "mode": "random",
            "step": "train",
            "space": "hidden = 32, 64\nlr = 0.0001..0.1 log\nlayers = 1..4 int\n",
            "trials": "5",
            "metric": "accuracy",
        }
    )
    assert body["random"] == {
        "hidden": [32, 64],
        "lr": {"min": 0.0001, "max": 0.1, "log": True, "int": False},
        "layers": {"min": 1.0, "max": 4.0, "log": False, "int": True},
    }
    assert body["trials"] == 5 and body["goal"] == "max"
    for form, message in [
        ({"mode": "grid", "space": "lr = 0.1..0.2"}, "ranges are for random"),
        ({"mode": "random", "space": "lr = 0.1..0.2 cubic", "trials": "3"}, "unknown range"),
        ({"mode": "random", "space": "lr = a..b", "trials": "3"}, "MIN..MAX with numbers"),
        ({"mode": "random", "space": "lr", "trials": "3"}, "write PARAM = values"),
        ({"mode": "random", "space": "lr = 1, 2", "trials": "many"}, "trials must be a whole"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            form_sweep(form)


def test_a_random_sweep_started_from_the_pipeline_form(server):
    with server.client() as client:
        split_pipeline(client)
        login(client)
        page = client.get("/projects/sw/pipelines/p").text
        assert 'name="mode"' in page and 'name="trials"' in page
        resp = client.post(
            "/projects/sw/pipelines/p/sweeps",
            data={
                "_csrf_token": csrf(page),
                "step": "split",
                "mode": "random",
                "space": "test_size = 0.1..0.4\nseed = 0, 1",
                "trials": "4",
                "metric": "test_rows",
                "goal": "max",
            },
            follow_redirects=False,
        )
        assert resp.status_code in (302, 303), resp.text
        sweep_id = int(resp.headers["location"].rsplit("/", 1)[1])
        deadline = time.monotonic() + patience(120)
        while time.monotonic() < deadline:
            body = client.get(f"/api/projects/sw/sweeps/{sweep_id}").json()
            if body["finished"]:
                break
            time.sleep(0.5)
    assert len(body["trials"]) == 4 and all(t["status"] == "succeeded" for t in body["trials"])
    assert all(0.1 <= t["params"]["test_size"] <= 0.4 for t in body["trials"])
    assert body["sweep"]["spec"]["trials"] == 4


VALIDATED = [
    {"name": "split", "module": "split", "inputs": {"data": "dataset:d"}},
    {"name": "train", "module": "gradient-boosting", "inputs": {"train": "split.train"}},
    {"name": "eval-val", "module": "evaluate",
     "inputs": {"model": "train.model", "test": "split.validation"}},
    {"name": "eval-test", "module": "evaluate",
     "inputs": {"model": "train.model", "test": "split.test"}},
]  # fmt: skip


def test_a_sweep_ranks_on_validation_and_reports_test_apart():
    from reef.runtime.sweeps import scoring

    assert scoring(VALIDATED, "eval-val/accuracy", None) == "eval-test/accuracy"
    assert scoring(VALIDATED, "eval-val/accuracy", "eval-test/macro_f1") == "eval-test/macro_f1"
    assert scoring(VALIDATED, "train/val_accuracy", None) == "train/accuracy"
    assert scoring(VALIDATED, "val_loss", None) == "loss"
    assert scoring(VALIDATED, "accuracy", None) is None  # nothing to derive it from
    with pytest.raises(InvalidInput, match=r"computed on a test set \(split.test\)"):
        scoring(VALIDATED, "eval-test/accuracy", None)
    with pytest.raises(InvalidInput, match="other than 'metric'"):
        scoring(VALIDATED, "eval-val/accuracy", "eval-val/accuracy")
