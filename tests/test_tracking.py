"""Experiment tracking: scripts log through the SDK, nothing is lost when the server blinks,
comments, and the reproducibility record of every step."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import UNSAFE, patience, start_server

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, time
import reef

n, pause = int(sys.argv[1]), float(sys.argv[2])
with reef.init(project="lab", name="sgd", params={"lr": 0.1, "layers": 3}) as run:
    run.set_tags({"owner": "ada"})
    print("run", run.run_id, flush=True)
    for i in range(n):
        run.log_metrics({"loss": 1.0 / (i + 1), "acc": i / n}, step=i)
        if i % 100 == 0:
            time.sleep(pause)
print("finished", flush=True)
"""


def run_script(server, tmp_path, n: int, pause: float) -> subprocess.Popen:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    env = {**os.environ, "REEF_URL": server.url, "REEF_TOKEN": server.token()}
    return subprocess.Popen(
        [sys.executable, str(path), str(n), str(pause)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_script_logs_params_metrics_and_tags(shared_server, tmp_path):
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "lab"})
    proc = run_script(shared_server, tmp_path, 500, 0.0)
    out, _ = proc.communicate(timeout=patience(60))
    assert proc.returncode == 0, out
    run_id = int(out.split()[1])
    with shared_server.client() as client:
        state = client.get(f"/api/projects/lab/runs/{run_id}").json()
        history = client.get(f"/api/projects/lab/runs/{run_id}/metrics").json()
    assert state["run"]["status"] == "succeeded" and state["run"]["name"] == "sgd"
    params = {(p["step"], p["key"]): p["value"] for p in state["params"]}
    assert params[("script", "lr")] == 0.1 and params[("tags", "owner")] == "ada"
    assert [s for s, _ in history["loss"]] == list(range(500))
    assert history["loss"][9][1] == pytest.approx(0.1)


def test_no_point_is_lost_when_the_server_stops_for_a_few_seconds(server, tmp_path):
    with server.client() as client:
        client.post("/api/projects", json={"name": "lab"})
    proc = run_script(server, tmp_path, 3000, 0.1)  # about 3 s of logging
    started = proc.stdout.readline()  # "run N": the run exists (a busy box starts it slowly)
    time.sleep(1.0)
    port = server.url.rsplit(":", 1)[1]
    assert server.stop() == 0
    down = time.time()
    time.sleep(3.0)  # the script keeps logging into its buffer meanwhile
    up = time.time()
    restarted = start_server(server.data, server.data.parent / "modules", port=int(port))
    try:
        out, _ = proc.communicate(timeout=patience(120))
        assert proc.returncode == 0, started + out
        run_id = int(started.split()[1])
        with restarted.client() as client:
            history = client.get(f"/api/projects/lab/runs/{run_id}/metrics?times=true").json()
            state = client.get(f"/api/projects/lab/runs/{run_id}").json()
        assert [s for s, _, _ in history["loss"]] == list(range(3000))
        assert len(history["acc"]) == 3000
        # each point keeps the time it was logged, not the time its batch got through
        stamps = [t for _, _, t in history["loss"]]
        assert stamps == sorted(stamps)
        assert sum(down < t < up for t in stamps) > 100
        assert state["run"]["status"] == "succeeded"
    finally:
        restarted.stop()


def test_logging_to_a_finished_run_is_refused(shared_server):
    import reef
    from reef.sdk import ReefClientError

    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "lab"})
    with reef.init(project="lab", url=shared_server.url, token=shared_server.token()) as run:
        run.log_metric("loss", 0.5, step=1)
        run.finish()  # leaving the block finishes it again: nothing happens
    attempts = [
        lambda: run.log_metric("loss", 0.1),
        lambda: run.log_metrics({"loss": 0.1}),
        lambda: run.log_params({"lr": 0.1}),
        lambda: run.set_tags({"owner": "ada"}),
        lambda: run.log_artifact(__file__),
    ]
    for attempt in attempts:
        with pytest.raises(ReefClientError, match=f"run {run.run_id} is finished"):
            attempt()
    with shared_server.client() as client:
        got = client.get(f"/api/projects/lab/runs/{run.run_id}").json()
    assert got["run"]["status"] == "succeeded"
    assert got["metrics"] == {"loss": 0.5}


def test_comments_show_on_the_run_and_in_the_activity(shared_server):
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "lab"})
        run_id = client.post("/api/projects/lab/runs", json={"name": "manual"}).json()["id"]
        resp = client.post(
            f"/api/projects/lab/runs/{run_id}/comments",
            json={"text": "Labels in batch 3 look wrong."},
        )
        assert resp.status_code == 201
        empty = client.post(f"/api/projects/lab/runs/{run_id}/comments", json={"text": " "})
        assert empty.status_code == 400
        state = client.get(f"/api/projects/lab/runs/{run_id}").json()
        assert [c["text"] for c in state["comments"]] == ["Labels in batch 3 look wrong."]
        activity = client.get("/api/projects/lab").json()["activity"]
        assert activity[0]["action"] == "run.comment"
        finished = client.post(f"/api/projects/lab/runs/{run_id}/finish", json={"status": "ok"})
        assert finished.status_code == 400


def test_every_step_has_a_reproducibility_record(demo):
    server, info = demo
    with server.client(info["token"]) as client:
        record = client.get(f"/api/projects/demo/runs/{info['run_id']}/record")
        assert record.status_code == 200
        assert "attachment" in record.headers["content-disposition"]
        body = record.json()
    assert isinstance(body["spec"]["seed"], int)
    train = next(s for s in body["steps"] if s["step"] == "train")
    assert len(train["commit"]) == 40 and train["params"]["epochs"] == 30
    assert train["inputs"] == {"train": "split.train"}
    assert train["seed"] == body["spec"]["seed"]
    assert train["python"].startswith("3.") and "torch" in train["packages"]
    assert train["torch"]["version"].startswith("2.")
    assert train["environment_variables"]["PYTHONHASHSEED"] == "0"
    assert train["command"][-1] == "main.py"
    # the demo (split -> mlp-classifier -> evaluate: torch training, ONNX export) ran sandboxed
    if not UNSAFE:  # a kernel with Landlock ABI 4 (this one has 7)
        assert train["sandbox"]["enabled"] and train["sandbox"]["landlock_abi"] >= 4
        if os.geteuid() == 0:
            assert train["sandbox"]["user"] == "nobody"
