"""Comments with @mentions and prediction feedback reach the right people's inboxes."""

from __future__ import annotations

import pytest
from test_models import register, training_data

from conftest import api_token, csrf, login

PASSWORD = "a-long-enough-password"


@pytest.fixture
def team(app_client, tmp_path):
    """Project `lab`: the admin owns it, bob (developer) registered model `m`, alice is a
    reporter, carol has an account but is no member. Returns API headers per person."""
    admin = api_token(app_client)
    assert app_client.post("/api/projects", json={"name": "lab"}, headers=admin).status_code == 201
    for name in ("bob", "alice", "carol"):
        user = {"name": name, "password": PASSWORD}
        assert app_client.post("/api/users", json=user, headers=admin).status_code == 201
    for name, role in (("bob", "developer"), ("alice", "reporter")):
        member = {"user": name, "role": role}
        resp = app_client.post("/api/projects/lab/members", json=member, headers=admin)
        assert resp.status_code == 201, resp.text
    hub = app_client.app.state.hub
    register(hub, tmp_path)
    hub.db.execute("UPDATE model_versions SET created_by = 'bob'")  # bob trained it
    people = {n: api_token(app_client, n, PASSWORD) for n in ("bob", "alice", "carol")}
    return {"admin": admin, **people}


def inbox(client, headers, **params) -> dict:
    resp = client.get("/api/inbox", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_mention_reaches_the_member_and_a_non_member_is_named_in_a_note(app_client, team):
    text = {"text": "the recall on 'z' looks low, @alice. @carol @nobody see x@y.org"}
    resp = app_client.post("/api/projects/lab/comments/model/m", json=text, headers=team["bob"])
    assert resp.status_code == 201, resp.text
    assert resp.json()["note"] == "@carol, @nobody not notified: not a member of this project"
    alice = inbox(app_client, team["alice"])
    assert alice["unread"] == 1
    [entry] = alice["entries"]
    assert entry["kind"] == "mention" and entry["sentence"] == "bob mentioned you on model m"
    assert entry["link"] == "/projects/lab/models/m"
    assert inbox(app_client, team["carol"])["unread"] == 0  # no member: nothing
    assert inbox(app_client, team["bob"])["unread"] == 0  # nobody hears of their own comment
    # the project's owner owns what is in it
    admin = inbox(app_client, team["admin"])["entries"]
    assert [e["sentence"] for e in admin] == ["bob commented on model m"]
    # the badge counts unread entries; reading them clears it
    login(app_client, "alice", PASSWORD)
    assert 'data-unread="1"' in app_client.get("/inbox/badge").text
    page = app_client.get("/inbox").text
    assert "bob mentioned you on model m" in page and 'href="/projects/lab/models/m"' in page
    read = app_client.post(
        "/inbox/read",
        data={"_csrf_token": csrf(page), "id": str(entry["id"])},
        headers={"HX-Request": "true"},
    )
    assert read.status_code == 200 and read.headers["hx-trigger"] == "inbox-read"
    assert "data-unread" not in app_client.get("/inbox/badge").text


def test_feedback_on_a_model_reaches_its_owner(app_client, team):
    x, _ = training_data(seed=3, n=2)
    answer = app_client.post(
        "/api/projects/lab/models/m/predict", json={"rows": x.tolist()}, headers=team["alice"]
    ).json()
    feedback = [{"request_id": answer["request_id"], "row": 1, "label": "z"}]
    resp = app_client.post(
        "/api/projects/lab/models/m/feedback", json=feedback, headers=team["alice"]
    )
    assert resp.status_code == 200, resp.text
    bob = inbox(app_client, team["bob"])
    assert bob["unread"] == 1
    [entry] = bob["entries"]
    assert entry["sentence"] == "alice gave feedback on model m"
    assert "the right answer is z" in entry["text"]
    assert inbox(app_client, team["bob"])["unread"] == 1  # raised once, not on every read
    assert inbox(app_client, team["alice"])["unread"] == 0
    marked = app_client.post("/api/inbox/read", json={}, headers=team["bob"])
    assert marked.json() == {"marked": 1, "unread": 0}


def test_comments_on_runs_and_dataset_versions_and_following(app_client, team):
    hub = app_client.app.state.hub
    import pyarrow as pa

    hub.datasets.write_table("lab", "d", pa.table({"a": [1, 2]}))
    target = "/api/projects/lab/comments/dataset/d"
    resp = app_client.post(target, json={"text": "row 2 is wrong"}, headers=team["bob"])
    assert resp.status_code == 201, resp.text
    listed = app_client.get(f"{target}@1", headers=team["alice"]).json()
    assert [c["text"] for c in listed] == ["row 2 is wrong"]
    # bad input: nothing stored
    for body in ({"text": "  "}, {"txt": "x"}):
        assert app_client.post(target, json=body, headers=team["bob"]).status_code == 400
    assert (
        app_client.post(
            "/api/projects/lab/comments/pipeline/x", json={"text": "hi"}, headers=team["bob"]
        ).status_code
        == 400
    )
    assert len(app_client.get(target, headers=team["bob"]).json()) == 1
    # alice follows model m: bob's next comment reaches her as a comment
    login(app_client, "alice", PASSWORD)
    page = app_client.get("/projects/lab/comments/model/m").text
    assert "Follow" in page
    resp = app_client.post(
        "/projects/lab/follow/model/m",
        data={"_csrf_token": csrf(app_client.get("/inbox").text), "follow": "yes"},
        headers={"HX-Request": "true"},
    )
    assert "Stop following" in resp.text
    app_client.post("/api/projects/lab/comments/model/m", json={"text": "v2?"}, headers=team["bob"])
    assert [e["sentence"] for e in inbox(app_client, team["alice"])["entries"]] == [
        "bob commented on model m"
    ]
