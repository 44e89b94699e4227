"""Pipeline triggers and guards on a real `reef serve`: real `git push`es and dataset uploads
start runs, bursts fold into one run, a failing rule pauses the pipeline until a resume; a
cron trigger fires in-process under an injected clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pyarrow as pa
import pytest
from test_git import git

from conftest import TEST_MODULES, Server, modules_dir, patience, start_server, wait_run

P = "ct"
PIPE = f"/api/projects/{P}/pipelines/flow"
CSV = b"x,label\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(20))


class Env:
    def __init__(self, server: Server, root: Path) -> None:
        self.server = server
        self.api = server.client()
        self.clone = root / "relay"
        self.token = server.token()
        self.n = 0

    def push(self) -> str:
        """Commit a change to the module and `git push` it; returns the new sha."""
        self.n += 1
        (self.clone / "README.md").write_text(f"change {self.n}\n")
        git("add", "-A", cwd=self.clone)
        git("commit", "-qm", f"change {self.n}", cwd=self.clone)
        git("push", "-q", "origin", "main", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone).stdout.strip()

    def upload(self, content: bytes = CSV) -> httpx.Response:
        files = {"file": ("d.csv", content)}
        return self.api.post(f"/api/projects/{P}/datasets/d/versions", files=files)

    def runs(self) -> list[dict]:
        return self.api.get(f"/api/projects/{P}/runs", params={"pipeline": "flow"}).json()

    def wait_new_run(self, before: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) > before:
                assert len(runs) == before + 1, runs
                return wait_run(self.api, P, max(r["id"] for r in runs))
            time.sleep(0.2)
        raise TimeoutError(f"no new run after {timeout} s: {self.triggers()}")

    def triggers(self) -> dict:
        return self.api.get(f"{PIPE}/triggers").json()


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers 500 to the first two on /flaky."""

    got: ClassVar[list[tuple[str, dict, bytes]]] = []
    flaky_left = 2

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((self.path, dict(self.headers), body))
        failing = self.path == "/flaky" and Receiver.flaky_left > 0
        Receiver.flaky_left -= failing
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def received(path: str, event: str, timeout: float = 30) -> list[tuple[dict, bytes]]:
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        hits = [(h, b) for p, h, b in Receiver.got if p == path and h["X-Reef-Event"] == event]
        if hits:
            return hits
        time.sleep(0.1)
    raise TimeoutError(f"no {event} at {path}: {Receiver.got}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("triggers")
    server = start_server(root / "data", modules_dir(root))
    e = Env(server, root)
    e.api.post("/api/projects", json={"name": P}).raise_for_status()
    files = {"file": ("d.csv", CSV)}
    e.api.post(f"/api/projects/{P}/datasets", files=files, data={"name": "d"}).raise_for_status()
    shutil.copytree(TEST_MODULES / "relay", e.clone)
    host = server.url.removeprefix("http://")
    git("init", "-q", "-b", "main", cwd=e.clone)
    git("remote", "add", "origin", f"http://admin:{e.token}@{host}/git/{P}/relay.git", cwd=e.clone)
    e.push()
    spec = {"name": "flow", "steps": [{"name": "relay", "module": "relay",
            "inputs": {"data": "dataset:d"}, "params": {"seconds": 0}}]}  # fmt: skip
    e.api.post(f"/api/projects/{P}/pipelines", json=spec).raise_for_status()
    yield e
    e.api.close()
    server.stop()


def test_bad_triggers_are_4xx_and_store_nothing(env: Env) -> None:
    bad = [
        ({"kind": "cron", "cron": "61 * * * *"}, "minute field '61'"),
        ({"kind": "cron", "cron": "0 6 * *"}, "five"),
        ({"kind": "cron", "cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "push", "target": "library/split"}, "does not use module 'library/split'"),
        ({"kind": "dataset", "target": "other"}, "does not read dataset 'other'"),
        ({"kind": "webhook"}, "kind"),
    ]
    for body, fragment in bad:
        resp = env.api.post(f"{PIPE}/triggers", json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert fragment in resp.json()["detail"], resp.text
    assert env.api.post(f"{PIPE}/triggers", json={"kind": "push", "nope": 1}).status_code == 400
    assert env.api.put(f"{PIPE}/guards", json={"max_row_drop": 2}).status_code == 400
    listing = env.triggers()
    assert listing["triggers"] == [] and listing["debounce_s"] == 60
    assert [a["action"] for a in listing["history"]] == ["pipeline.create"]  # nothing audited


def test_ten_quick_pushes_start_one_run(env: Env) -> None:
    window = patience(4)
    env.api.put(f"{PIPE}/guards", json={"debounce_s": window}).raise_for_status()
    resp = env.api.post(f"{PIPE}/triggers", json={"kind": "push", "target": "relay"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["target"] == f"{P}/relay"
    before = len(env.runs())
    shas = [env.push() for _ in range(10)]
    state = env.wait_new_run(before)
    assert state["run"]["status"] == "succeeded", state
    assert state["origin"]["kind"] == "push" and state["origin"]["events"] == 10
    assert state["origin"]["ref"] == shas[-1]
    assert state["steps"][0]["commit_sha"] == shas[-1]
    time.sleep(window)  # nothing more comes of the burst
    assert len(env.runs()) == before + 1
    page = env.api.get(f"/projects/{P}/runs/{state['run']['id']}").text
    assert "started by" in page and shas[-1][:8] in page


def test_dataset_upload_starts_a_run(env: Env) -> None:
    env.api.put(f"{PIPE}/guards", json={"debounce_s": 0}).raise_for_status()
    resp = env.api.post(f"{PIPE}/triggers", json={"kind": "dataset", "target": "d"})
    assert resp.status_code == 201, resp.text
    before = len(env.runs())
    version = env.upload(CSV + b"20,0\n").json()["version"]  # one row more: a new version
    state = env.wait_new_run(before)
    assert state["origin"]["kind"] == "dataset" and state["origin"]["ref"] == f"d@{version}"
    assert state["steps"][0]["inputs"]["data"] == f"dataset:d@{version}"


def test_webhooks_are_signed_and_retried(env: Env, receiver: str) -> None:
    hooks = f"/api/projects/{P}/webhooks"
    for url in ["ftp://example.com/x", "javascript:alert(1)", "example.com/hook", "http://"]:
        resp = env.api.post(hooks, json={"url": url, "events": ["pipeline.paused"]})
        assert resp.status_code == 400 and "http(s)" in resp.json()["detail"], resp.text
    resp = env.api.post(hooks, json={"url": receiver, "events": ["run.exploded"]})
    assert resp.status_code == 400 and "run.exploded" in resp.json()["detail"]
    assert env.api.get(hooks).json() == []
    body = {"url": f"{receiver}/ok", "events": ["pipeline.paused"], "secret": "s3cret"}
    assert env.api.post(hooks, json=body).status_code == 201
    flaky = env.api.post(hooks, json={"url": f"{receiver}/flaky", "events": ["ping"]}).json()
    assert "secret" not in env.api.get(hooks).json()[0]
    env.api.post(f"{hooks}/{flaky['id']}/ping").raise_for_status()
    deadline = time.monotonic() + patience(30)
    while (d := env.api.get(f"{hooks}/{flaky['id']}/deliveries").json()[0])["status"] == "pending":
        assert time.monotonic() < deadline, d
        time.sleep(0.2)
    assert d["status"] == "delivered" and d["attempts"] == 3, d
    (headers, raw), *_ = received("/flaky", "ping")
    expected = hmac.new(flaky["secret"].encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Reef-Signature"] == f"sha256={expected}"
    again = env.api.post(f"{hooks}/{flaky['id']}/deliveries/{d['id']}/again")
    assert again.status_code == 201


def test_failed_rule_pauses_until_resume(env: Env) -> None:
    rules = [{"type": "row_count", "min": 15}]
    env.api.put(f"/api/projects/{P}/datasets/d/rules", json=rules).raise_for_status()
    before = len(env.runs())
    env.upload(CSV[: CSV.index(b"10,")]).raise_for_status()  # 10 rows: fails row_count
    deadline = time.monotonic() + patience(10)
    while not (listing := env.triggers())["paused"] and time.monotonic() < deadline:
        time.sleep(0.1)  # the guard hears of the version just after the upload's answer
    assert listing["paused"] and "failed its validation rules" in listing["paused_reason"]
    seen = {e["id"] for e in listing["events"]}
    env.push()
    deadline = time.monotonic() + patience(10)
    events = env.triggers()["events"]
    while not any(e["kind"] == "push" and e["id"] not in seen for e in events):
        assert time.monotonic() < deadline, "the push recorded no trigger event"
        time.sleep(0.1)
        events = env.triggers()["events"]
    assert len(env.runs()) == before  # neither the upload nor the push ran it
    fresh = [e for e in events if e["id"] not in seen]  # events are newest first
    upload_event = next(e for e in events if e["kind"] == "dataset")
    assert {e["status"] for e in [upload_event, *fresh]} == {"skipped"}, events[:3]
    (headers, raw), *_ = received("/ok", "pipeline.paused")
    expected = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Reef-Signature"] == f"sha256={expected}"
    assert "failed its validation rules" in json.loads(raw)["data"]["reason"]
    inbox = env.api.get("/api/inbox").json()["entries"]  # the owner (admin) is told too
    paused = [e for e in inbox if e["kind"] == "pipeline.paused"]
    assert paused and paused[0]["sentence"].startswith("pipeline flow paused itself: ")
    page = env.api.get(f"/projects/{P}/pipelines/flow").text
    assert "Paused" in page and "failed its validation rules" in page
    assert env.api.post(f"{PIPE}/resume", json={"comment": " "}).status_code == 400
    resp = env.api.post(f"{PIPE}/resume", json={"comment": "rows checked by hand"})
    assert resp.status_code == 201, resp.text
    state = wait_run(env.api, P, resp.json()["run"])
    assert state["origin"]["kind"] == "resume" and not env.triggers()["paused"]
    actions = [a["action"] for a in env.triggers()["history"]]
    assert "pipeline.paused" in actions and "pipeline.resumed" in actions


def test_cron_fires_under_an_injected_clock(app_client) -> None:
    from conftest import api_token

    hub = app_client.app.state.hub
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": P}, headers=headers).raise_for_status()
    spec = {"name": "flow", "steps": [{"name": "s", "module": "library/sleeper",
            "params": {"seconds": 0}}]}  # fmt: skip
    app_client.post(f"/api/projects/{P}/pipelines", json=spec, headers=headers).raise_for_status()
    start = datetime(2026, 3, 2, 5, 0)  # a Monday, 06:00 in Paris
    hub.triggers.clock = lambda: start
    body = {"kind": "cron", "cron": "30 6 * * 1", "timezone": "Europe/Paris"}
    resp = app_client.post(f"{PIPE}/triggers", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    tid = resp.json()["id"]
    hub.triggers.store.db.execute(
        "UPDATE pipeline_triggers SET created_at = ? WHERE id = ?", [start, tid]
    )
    hub.triggers.clock = lambda: start + timedelta(minutes=29)
    assert hub.triggers.tick() == []
    hub.triggers.clock = lambda: start + timedelta(minutes=31)
    hub.triggers.tick()  # (or the service's own thread, on the same clock)
    events = hub.triggers.store.events(hub.projects.get(P).id, "flow")
    assert len(events) == 1 and events[0]["status"] == "started", events
    run_id = events[0]["run_id"]
    origin = hub.triggers.store.origin(run_id)
    assert origin["kind"] == "cron" and origin["ref"] == "2026-03-02T05:30"
    assert hub.triggers.tick() == []  # next due a week later
    nxt = app_client.get(f"{PIPE}/triggers", headers=headers).json()["triggers"][0]["next_due"]
    assert nxt.startswith("2026-03-09T05:30")
    # a model the pipeline trains has an open drift alert: the next firing pauses it
    spec["steps"][0]["register"] = "m"
    app_client.post(f"/api/projects/{P}/pipelines", json=spec, headers=headers).raise_for_status()
    model = hub.models.model_id(hub.projects.get(P).id, "m", create=True)
    hub.models.raise_alert(model, "drift_psi", 1, "feature a drifted (PSI 0.4)", {})
    hub.triggers.clock = lambda: start + timedelta(days=7, minutes=31)
    hub.triggers.tick()
    guards = hub.triggers.store.guards(hub.projects.get(P).id, "flow")
    assert guards.paused and "open drift_psi alert" in guards.paused_reason
    assert hub.triggers.store.events(hub.projects.get(P).id, "flow")[0]["status"] == "skipped"


def test_failed_gates_ask_for_approval_and_approval_promotes(env: Env) -> None:
    rows = "".join(f"{i % 7},{(i * 3) % 5},{'ab'[i % 2]}\n" for i in range(60))
    files = {"file": ("t.csv", ("a,b,label\n" + rows).encode())}
    env.api.post(f"/api/projects/{P}/datasets", files=files, data={"name": "t"}).raise_for_status()
    gates = {"checks": [{"type": "metric", "metric": "accuracy", "min": 2}]}
    env.api.post(f"/api/projects/{P}/gates", json=gates).raise_for_status()
    step = {"name": "train", "module": "library/gradient-boosting", "register": "m",
            "inputs": {"train": "dataset:t"}, "params": {"n_estimators": 5}}  # fmt: skip
    spec = {"name": "ship", "steps": [step], "promote": "production"}
    env.api.post(f"/api/projects/{P}/pipelines", json=spec).raise_for_status()
    bad = env.api.post(f"/api/projects/{P}/pipelines", json={**spec, "name": "x", "promote": 3})
    assert bad.status_code == 400 and "promote" in bad.json()["detail"]
    for trees in (5, 6):  # two different models (an identical one would make no new version)
        body = {"params": {"train": {"n_estimators": trees}}}
        run = env.api.post(f"/api/projects/{P}/pipelines/ship/runs", json=body).json()["id"]
        assert wait_run(env.api, P, run)["run"]["status"] == "succeeded"
    base = f"/api/projects/{P}/models/m"
    requests = env.api.get(f"{base}/approvals").json()
    assert [(a["version"], a["status"]) for a in requests] == [(2, "pending"), (1, "pending")]
    assert env.api.get(base).json()["aliases"] == {}  # nothing promoted yet
    assert env.api.post(f"{base}/approvals/{requests[1]['id']}",
                        json={"approve": True, "comment": ""}).status_code == 400  # fmt: skip
    ok = {"approve": True, "comment": "accuracy gate is a placeholder"}
    resp = env.api.post(f"{base}/approvals/{requests[1]['id']}", json=ok)
    assert resp.status_code == 200 and resp.json()["status"] == "approved", resp.text
    assert env.api.get(base).json()["aliases"] == {"production": 1}
    no = {"approve": False, "comment": "trained on a bad day"}
    resp = env.api.post(f"{base}/approvals/{requests[0]['id']}", json=no)
    assert resp.json()["status"] == "rejected" and resp.json()["comment"] == no["comment"]
    assert env.api.post(f"{base}/approvals/{requests[0]['id']}", json=ok).status_code == 409
    assert env.api.get(base).json()["aliases"] == {"production": 1}
    page = env.api.get(f"/projects/{P}/models/m").text
    assert "Approval requests" in page and "trained on a bad day" in page


def test_pages_and_the_row_guard_in_process(app_client) -> None:
    """The pipeline page's forms (add a trigger, guards, resume) and the webhooks page; a
    version that loses more rows than allowed pauses the pipeline."""
    from conftest import csrf, login
    from reef.runtime.dataset_versions import new_version

    login(app_client)
    hub = app_client.app.state.hub
    hub.projects.create(P, hub.admin(), "")
    spec = {"steps": [{"name": "s", "module": "library/sleeper", "params": {"seconds": 0}}]}
    hub.runs.save_pipeline(hub.projects.get(P).id, "flow", spec, "admin")
    hub.runs.save_pipeline(hub.projects.get(P).id, "reads", {"steps": [
        {"name": "r", "module": "relay", "inputs": {"data": "dataset:d"}}]}, "admin")  # fmt: skip
    page = f"/projects/{P}/pipelines/flow"
    token = csrf(app_client.get(page).text)
    form = {"kind": "cron", "cron": "*/5 * * * *", "timezone": "UTC", "_csrf_token": token}
    assert app_client.post(f"{page}/triggers", data=form).status_code == 200  # redirected
    bad = app_client.post(f"{page}/triggers", data={**form, "cron": "* * * * * *"})
    assert bad.status_code == 400 and "five" in bad.text
    guards = {"debounce_s": "5", "max_row_drop": "30", "_csrf_token": token}
    assert app_client.post(f"{page}/guards", data=guards).status_code == 200
    listing = hub.triggers.listing(P, "flow")
    assert len(listing["triggers"]) == 1 and listing["max_row_drop"] == 0.3
    assert "*/5 * * * *" in app_client.get(page).text
    hooks = f"/projects/{P}/webhooks"
    token = csrf(app_client.get(hooks).text)
    made = app_client.post(hooks, data={"url": "https://example.com/h", "events": "ping",
                                        "_csrf_token": token})  # fmt: skip
    assert made.status_code == 201 and "shown only now" in made.text
    bad = app_client.post(hooks, data={"url": "file:///etc/passwd", "events": "ping",
                                       "_csrf_token": token})  # fmt: skip
    assert bad.status_code == 400 and len(hub.webhooks.listing(P)) == 1
    # the row guard, on a pipeline that reads d and has a trigger
    reads = hub.projects.get(P).id
    hub.triggers.store.add(reads, "reads", "manual", "admin")
    hub.triggers.store.set_guards(reads, "reads", 60, 0.3)
    hub.triggers.store.add(reads, "flow", "manual", "admin")  # flow reads nothing: untouched
    for rows in (20, 10):
        info = hub.datasets.write_table(P, "d", pa.table({"x": list(range(rows))}))
        new_version(hub, "admin", P, "d", info, f"{rows} rows", "upload")
    guards = hub.triggers.store.guards(reads, "reads")
    assert guards.paused and "50% fewer rows" in guards.paused_reason
    assert not hub.triggers.store.guards(reads, "flow").paused
    token = csrf(app_client.get(f"/projects/{P}/pipelines/reads").text)
    resume = {"comment": "the half was a test", "_csrf_token": token}
    assert app_client.post(f"/projects/{P}/pipelines/reads/resume", data=resume).status_code == 200
    assert not hub.triggers.store.guards(reads, "reads").paused
