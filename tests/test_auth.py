"""People, tokens, sessions, CSRF and roles: one mechanism, checked from the outside."""

from __future__ import annotations

from conftest import ADMIN_PASSWORD, api_token, csrf, login


def add_user(client, headers, name: str, password: str = "password-123") -> dict[str, str]:
    resp = client.post("/api/users", json={"name": name, "password": password}, headers=headers)
    assert resp.status_code == 201, resp.text
    return api_token(client, name, password)


def test_healthz_is_public(app_client):
    assert app_client.get("/healthz").json()["status"] == "ok"


def test_api_without_token_is_401_with_message(app_client):
    resp = app_client.get("/api/projects")
    assert resp.status_code == 401
    assert "Bearer" in resp.json()["detail"]
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_bad_token_and_bad_password(app_client):
    resp = app_client.get("/api/projects", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert "unknown" in resp.json()["detail"]
    resp = app_client.post("/api/tokens", auth=("admin", "wrong-password"))
    assert resp.status_code == 401
    assert resp.json()["detail"] == "wrong user name or password"


def test_token_is_stored_hashed(app_client, settings):
    token = api_token(app_client)["Authorization"].split()[1]
    assert app_client.get("/api/projects", headers={"Authorization": f"Bearer {token}"}).is_success
    raw = (settings.data_dir / "reef.duckdb").read_bytes()
    assert token.encode() not in raw


def test_roles_gate_every_endpoint(app_client):
    admin = api_token(app_client)
    assert app_client.post("/api/projects", json={"name": "p1"}, headers=admin).status_code == 201
    dev = add_user(app_client, admin, "dev")
    rep = add_user(app_client, admin, "rep")
    outsider = add_user(app_client, admin, "outsider")
    for user, role in (("dev", "developer"), ("rep", "reporter")):
        resp = app_client.post(
            "/api/projects/p1/members", json={"user": user, "role": role}, headers=admin
        )
        assert resp.status_code == 201, resp.text
    files = {"file": ("t.csv", b"a,b\n1,2\n")}
    resp = app_client.post(
        "/api/projects/p1/datasets", files=files, data={"name": "t"}, headers=outsider
    )
    assert resp.status_code == 404  # a private project answers as if it did not exist
    assert resp.json()["detail"] == "project 'p1' not found"
    resp = app_client.post(
        "/api/projects/p1/datasets", files=files, data={"name": "t"}, headers=rep
    )
    assert resp.status_code == 403
    assert "developer role" in resp.json()["detail"]
    assert app_client.get("/api/projects/p1", headers=rep).status_code == 200
    resp = app_client.post(
        "/api/projects/p1/datasets", files=files, data={"name": "t"}, headers=dev
    )
    assert resp.status_code == 201, resp.text
    assert app_client.get("/api/projects/p1", headers=outsider).status_code == 404
    assert app_client.get("/api/projects/nope", headers=outsider).status_code == 404
    assert [p["name"] for p in app_client.get("/api/projects", headers=outsider).json()] == [
        "library"
    ]
    resp = app_client.post(
        "/api/projects/p1/members", json={"user": "rep", "role": "owner"}, headers=dev
    )
    assert resp.status_code == 403


def test_every_change_is_audited(app_client):
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "audited"}, headers=admin)
    app_client.post(
        "/api/projects/audited/datasets",
        files={"file": ("t.csv", b"a\n1\n")},
        data={"name": "t", "message": "first"},
        headers=admin,
    )
    activity = app_client.get("/api/projects/audited", headers=admin).json()["activity"]
    actions = [(a["actor"], a["action"], a["target"]) for a in activity]
    assert ("admin", "project.create", "project audited") in actions
    assert ("admin", "dataset.version", "dataset t@1") in actions


def test_browser_login_session_and_csrf(app_client):
    resp = app_client.get("/", follow_redirects=False)
    assert resp.status_code in (302, 303) and resp.headers["location"].startswith("/login")
    page = app_client.get("/login")
    token = csrf(page.text)
    resp = app_client.post(
        "/login", data={"username": "admin", "password": "bad-password", "_csrf_token": token}
    )
    assert resp.status_code == 401 and "wrong user name or password" in resp.text
    resp = app_client.post(
        "/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code in (302, 303)
    home = app_client.get("/")
    assert home.status_code == 200 and "library" in home.text
    # a form post without the CSRF token is refused, and nothing is created
    resp = app_client.post("/projects", data={"name": "sneaky"})
    assert resp.status_code == 403
    resp = app_client.post("/projects", data={"name": "fine", "_csrf_token": csrf(home.text)})
    assert resp.status_code == 200 and "fine" in resp.text
    assert "sneaky" not in app_client.get("/").text
    # the session cookie does not authenticate the JSON API (API calls carry tokens)
    assert app_client.get("/api/projects").status_code == 401


def test_logout_ends_the_session(app_client):
    token = csrf(app_client.get("/login").text)
    app_client.post(
        "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "_csrf_token": token}
    )
    home = app_client.get("/")
    app_client.post("/logout", data={"_csrf_token": csrf(home.text)})
    resp = app_client.get("/", follow_redirects=False)
    assert resp.status_code in (302, 303)


def test_a_run_token_only_reports_to_its_own_run(app_client):
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p2"}, headers=admin)
    hub = app_client.app.state.hub
    pid = hub.projects.get("p2").id
    runs = [hub.runs.create_run(pid, None, {"steps": []}, [], "admin") for _ in range(2)]
    who = hub.people.user("admin")
    token = hub.people.issue_token(who["id"], "run", "test", run_id=runs[0])
    run_headers = {"Authorization": f"Bearer {token}"}
    point = {"step": "s", "points": [{"key": "loss", "value": 0.5, "step": 1}]}
    ok = app_client.post(
        f"/api/projects/p2/runs/{runs[0]}/metrics", json=point, headers=run_headers
    )
    assert ok.status_code == 201, ok.text
    other = app_client.post(
        f"/api/projects/p2/runs/{runs[1]}/metrics", json=point, headers=run_headers
    )
    assert other.status_code == 403
    assert other.json()["detail"] == "a run token may only report to its own run"
    assert (
        app_client.post("/api/projects", json={"name": "x"}, headers=run_headers).status_code == 403
    )
    assert app_client.post("/api/tokens", headers=run_headers).status_code == 403
    hub.people.revoke_run_tokens(runs[0])
    late = app_client.post(
        f"/api/projects/p2/runs/{runs[0]}/metrics", json=point, headers=run_headers
    )
    assert late.status_code == 401
    history = app_client.get(f"/api/projects/p2/runs/{runs[0]}/metrics", headers=admin).json()
    assert history == {"loss": [[1, 0.5]]}


def test_a_step_token_reports_as_its_own_step_only(app_client):
    """A model version records its training and evaluator steps' metrics: a step's token
    cannot file metrics, params or artifacts under another step, and nothing is stored."""
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p6"}, headers=admin)
    hub = app_client.app.state.hub
    run = hub.runs.create_run(hub.projects.get("p6").id, None, {"steps": []}, [], "admin")
    who = hub.people.user("admin")
    token = hub.people.issue_token(who["id"], "run", "test", run_id=run, step="evaluate")
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/projects/p6/runs/{run}"
    point = {"points": [{"key": "accuracy", "value": 0.99}]}
    for step in ("train", None):
        body = {**point, "step": step} if step else point
        refused = app_client.post(f"{base}/metrics", json=body, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "reports as step 'evaluate'" in refused.json()["detail"]
    params = app_client.post(
        f"{base}/params", json={"step": "train", "params": {"a": 1}}, headers=headers
    )
    assert params.status_code == 403
    upload = app_client.post(
        f"{base}/artifacts",
        files={"file": ("a.txt", b"x")},
        data={"step": "train"},
        headers=headers,
    )
    assert upload.status_code == 403
    assert app_client.get(f"{base}/metrics", headers=admin).json() == {}
    ok = app_client.post(f"{base}/metrics", json={**point, "step": "evaluate"}, headers=headers)
    assert ok.status_code == 201
    assert app_client.get(f"{base}/metrics", headers=admin).json() == {"accuracy": [[None, 0.99]]}


def test_bad_metric_points_are_refused_whole(app_client):
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p3"}, headers=admin)
    hub = app_client.app.state.hub
    run = hub.runs.create_run(hub.projects.get("p3").id, None, {"steps": []}, [], "admin")
    bad = {"points": [{"key": "loss", "value": 1.0}, {"key": "loss", "value": "high"}]}
    resp = app_client.post(f"/api/projects/p3/runs/{run}/metrics", json=bad, headers=admin)
    assert resp.status_code == 400 and "points[1].value" in resp.json()["detail"]
    assert app_client.get(f"/api/projects/p3/runs/{run}/metrics", headers=admin).json() == {}


def test_metric_points_as_columns_keep_their_times_and_bad_ones_are_refused(app_client):
    """The SDK's form: one list per field. Times are the logger's (seconds since the epoch);
    a point without one gets the server's. A bad column refuses the whole batch, saying why."""
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p4"}, headers=admin)
    hub = app_client.app.state.hub
    run = hub.runs.create_run(hub.projects.get("p4").id, None, {"steps": []}, [], "admin")
    url = f"/api/projects/p4/runs/{run}/metrics"
    logged = 1_790_000_000.25  # 2026-09-21 13:33:20.25 UTC
    columns = {
        "key": ["loss", "acc", "loss"],
        "value": [0.5, 1, None],
        "step": [0, 0, None],
        "ts": [logged, logged, None],
    }
    resp = app_client.post(url, json={"step": "train", "columns": columns}, headers=admin)
    assert resp.status_code == 201 and resp.json() == {"stored": 3}, resp.text
    rows = hub.db.query(
        "SELECT key, value, step, epoch_us(ts) / 1e6 AS ts FROM metrics "
        "WHERE run_id = ? ORDER BY ts, key",
        [run],
    )
    assert [(r["key"], r["value"], r["step"]) for r in rows] == [
        ("acc", 1.0, 0),
        ("loss", 0.5, 0),
        ("loss", None, None),
    ]
    assert rows[0]["ts"] == rows[1]["ts"] == logged and rows[2]["ts"] > logged
    bad = [
        ({"key": ["loss"], "value": ["high"]}, "columns.value[0]: Expected `float | null`"),
        ({"key": ["loss"], "value": [1.0], "step": [1.5]}, "columns.step[0]: Expected `int"),
        ({"key": ["loss", "acc"], "value": [1.0]}, "as long as columns.key (2)"),
        ({"key": ["loss"], "value": [1.0], "ts": [1.79e12]}, "seconds since the epoch"),
        ({"key": [None], "value": [1.0]}, "columns.key[0]: Expected `str`"),
        ({"key": ["loss"], "value": [1.0], "epoch": [3]}, "unknown field `epoch`"),
        ({"key": "loss", "value": [1.0]}, "columns.key: Expected `array`"),
    ]
    for columns, message in bad:
        resp = app_client.post(url, json={"columns": columns}, headers=admin)
        assert resp.status_code == 400 and message in resp.json()["detail"], (columns, resp.text)
    assert hub.db.scalar("SELECT count(*) FROM metrics WHERE run_id = ?", [run]) == 3
    hub.runs.settle_metrics()
    assert hub.db.scalar("SELECT sum(points) FROM run_metrics WHERE run_id = ?", [run]) == 3


def test_a_finish_can_carry_the_last_points_and_is_not_applied_twice(app_client):
    """The SDK sends its last buffered points with the finish: stored before the run ends. A
    finish repeated (its first answer lost) is refused and stores nothing again."""
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p5"}, headers=admin)
    run = app_client.post("/api/projects/p5/runs", json={"name": "s"}, headers=admin).json()["id"]
    finish = {
        "status": "succeeded",
        "step": "script",
        "columns": {"key": ["loss", "loss"], "value": [0.5, 0.25], "step": [0, 1]},
    }
    bad = {**finish, "columns": {"key": ["loss"], "value": ["low"]}}
    resp = app_client.post(f"/api/projects/p5/runs/{run}/finish", json=bad, headers=admin)
    assert resp.status_code == 400 and "columns.value" in resp.json()["detail"]
    state = app_client.get(f"/api/projects/p5/runs/{run}", headers=admin).json()
    assert state["run"]["status"] == "running"  # refused whole: the run did not end either
    for expected in (200, 409):
        resp = app_client.post(f"/api/projects/p5/runs/{run}/finish", json=finish, headers=admin)
        assert resp.status_code == expected, resp.text
    history = app_client.get(f"/api/projects/p5/runs/{run}/metrics", headers=admin).json()
    assert history == {"loss": [[0, 0.5], [1, 0.25]]}
    state = app_client.get(f"/api/projects/p5/runs/{run}", headers=admin).json()
    assert state["run"]["status"] == "succeeded" and state["metrics"] == {"loss": 0.25}


def test_htmx_without_a_session_is_sent_to_the_login_page(app_client):
    """A page's poll after the session ended: htmx follows HX-Redirect, a browser the 303."""
    resp = app_client.get("/queue", headers={"HX-Request": "true"}, follow_redirects=False)
    assert resp.status_code == 401 and resp.headers["HX-Redirect"] == "/login", resp.text
    plain = app_client.get("/queue", follow_redirects=False)
    assert plain.status_code in (302, 303) and plain.headers["location"].startswith("/login")
    login(app_client)
    error = app_client.get("/projects/nowhere/runs", headers={"HX-Request": "true"})
    assert error.status_code == 404 and error.text.startswith('<div class="error">'), error.text
