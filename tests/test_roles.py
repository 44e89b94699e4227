"""Roles (issue 14 item 3): only owners touch the owner role, the last owner stays, who may
create projects is an admin's setting, a private project is a 404 to non-members, and only a
run's creator or a maintainer writes to a script run. Also member management (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from test_accounts import make_app

from conftest import api_token, login

PASSWORD = "role-test-password"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_app(tmp_path_factory.mktemp("roles")) as c:
        yield c


@pytest.fixture(scope="module")
def team(client) -> dict[str, dict[str, str]]:
    """Project `lab`: owner olive; mia maintainer, dev and dan developers, rex reporter;
    out is a member of nothing."""
    admin = api_token(client)
    heads = {"admin": admin}
    for name in ("olive", "mia", "dev", "dan", "rex", "out"):
        body = {"name": name, "password": PASSWORD}
        assert client.post("/api/users", json=body, headers=admin).status_code == 201
        heads[name] = api_token(client, name, PASSWORD)
    assert client.post("/api/projects", json={"name": "lab"}, headers=heads["olive"]).is_success
    for name, role in (("mia", "maintainer"), ("dev", "developer"), ("dan", "developer")):
        add = client.post("/api/projects/lab/members", json={"user": name, "role": role},
                          headers=heads["olive"])  # fmt: skip
        assert add.status_code == 201, add.text
    add = client.post(
        "/api/projects/lab/members", json={"user": "rex", "role": "reporter"}, headers=heads["mia"]
    )
    assert add.status_code == 201, add.text
    return heads


def members(client, team) -> dict[str, str]:
    rows = client.get("/api/projects/lab/members", headers=team["rex"]).json()
    return {m["user"]: m["role"] for m in rows}


def test_a_member_name_that_does_not_exist_is_a_clear_400(client, team):
    before = members(client, team)
    resp = client.post(
        "/api/projects/lab/members", json={"user": "ghost", "role": "developer"},
        headers=team["mia"],
    )  # fmt: skip
    assert resp.status_code == 400
    assert "there is no user 'ghost'" in resp.json()["detail"]
    bad_role = client.post(
        "/api/projects/lab/members", json={"user": "out", "role": "boss"}, headers=team["mia"]
    )
    assert bad_role.status_code == 400 and "role" in bad_role.text
    assert members(client, team) == before


def test_a_maintainer_cannot_grant_change_or_remove_the_owner_role(client, team):
    before = members(client, team)
    mia = team["mia"]
    attempts = [
        client.post(
            "/api/projects/lab/members", json={"user": "mia", "role": "owner"}, headers=mia
        ),
        client.patch("/api/projects/lab/members/dev", json={"role": "owner"}, headers=mia),
        client.patch("/api/projects/lab/members/olive", json={"role": "reporter"}, headers=mia),
        client.delete("/api/projects/lab/members/olive", headers=mia),
    ]
    for resp in attempts:
        assert resp.status_code == 403, resp.text
        assert resp.json()["detail"] == "only an owner can grant, change or remove the owner role"
    assert members(client, team) == before
    dev = client.patch(
        "/api/projects/lab/members/dev", json={"role": "maintainer"}, headers=team["dev"]
    )
    assert dev.status_code == 403  # developers manage no members at all
    # the same through the page form
    login(client, "mia", PASSWORD)
    page = client.get("/projects/lab")
    assert 'value="owner"' not in page.text.split('id="add-member"')[1].split("</form>")[0]
    from conftest import csrf

    form = {"user": "mia", "role": "owner", "_csrf_token": csrf(page.text)}
    resp = client.post("/projects/lab/members", data=form, follow_redirects=False)
    assert resp.status_code == 403 and "only an owner" in resp.text
    client.cookies.clear()
    assert members(client, team) == before


def test_the_last_owner_stays(client, team):
    olive = team["olive"]
    demote = client.patch(
        "/api/projects/lab/members/olive", json={"role": "developer"}, headers=olive
    )
    assert demote.status_code == 409
    assert "'olive' is the last owner of project 'lab'" in demote.json()["detail"]
    remove = client.delete("/api/projects/lab/members/olive", headers=olive)
    assert remove.status_code == 409
    assert members(client, team)["olive"] == "owner"
    # with a second owner, the first may step down
    assert client.patch(
        "/api/projects/lab/members/mia", json={"role": "owner"}, headers=olive
    ).is_success
    assert client.patch(
        "/api/projects/lab/members/olive", json={"role": "maintainer"}, headers=olive
    ).is_success
    assert client.patch(
        "/api/projects/lab/members/olive", json={"role": "owner"}, headers=team["mia"]
    ).is_success
    assert client.patch(
        "/api/projects/lab/members/mia", json={"role": "maintainer"}, headers=olive
    ).is_success
    assert members(client, team)["mia"] == "maintainer"


def test_members_are_added_changed_and_removed(client, team):
    olive = team["olive"]
    assert client.post("/api/projects/lab/members", json={"user": "out", "role": "reporter"},
                       headers=olive).status_code == 201  # fmt: skip
    assert client.patch("/api/projects/lab/members/out", json={"role": "developer"},
                        headers=olive).json()  # fmt: skip
    assert members(client, team)["out"] == "developer"
    assert client.delete("/api/projects/lab/members/out", headers=olive).status_code == 200
    assert "out" not in members(client, team)
    gone = client.delete("/api/projects/lab/members/out", headers=olive)
    assert gone.status_code == 404 and "not a member" in gone.json()["detail"]


def test_a_non_member_sees_the_same_404_as_for_a_missing_project(client, team):
    out = team["out"]
    for path in ("", "/datasets", "/runs", "/members", "/models"):
        private = client.get(f"/api/projects/lab{path}", headers=out)
        missing = client.get(f"/api/projects/nolab{path}", headers=out)
        assert private.status_code == missing.status_code == 404, path
        assert private.json()["detail"] == missing.json()["detail"].replace("nolab", "lab")
    login(client, "out", PASSWORD)
    private, missing = client.get("/projects/lab"), client.get("/projects/nolab")
    assert private.status_code == missing.status_code == 404
    assert private.text.replace("lab", "X") == missing.text.replace("nolab", "X")
    client.cookies.clear()


def test_project_creation_can_be_limited(client, team):
    admin, dan = team["admin"], team["dan"]
    create = lambda name, who: client.post("/api/projects", json={"name": name}, headers=who)  # noqa: E731
    assert client.get("/api/site-settings", headers=admin).json() == {
        "project_creation": "everyone"
    }
    bad = client.patch("/api/site-settings", json={"project_creation": "nobody"}, headers=admin)
    assert bad.status_code == 400
    assert (
        client.patch(
            "/api/site-settings", json={"project_creation": "admins"}, headers=dan
        ).status_code
        == 403
    )
    assert client.get("/api/site-settings", headers=admin).json()["project_creation"] == "everyone"
    client.patch("/api/site-settings", json={"project_creation": "admins"}, headers=admin)
    refused = create("dans", dan)
    assert refused.status_code == 403 and "limited who may create projects" in refused.text
    assert create("admins-own", admin).status_code == 201
    client.patch("/api/site-settings", json={"project_creation": "allowed"}, headers=admin)
    assert create("dans", dan).status_code == 403
    client.patch("/api/users/dan", json={"may_create_projects": True}, headers=admin)
    assert create("dans", dan).status_code == 201
    client.patch("/api/site-settings", json={"project_creation": "everyone"}, headers=admin)


def test_only_the_creator_or_a_maintainer_writes_to_a_script_run(client, team):
    run = client.post("/api/projects/lab/runs", json={"name": "devs"}, headers=team["dev"])
    run_id = run.json()["id"]
    base = f"/api/projects/lab/runs/{run_id}"
    points = {"points": [{"key": "loss", "value": 0.5}]}
    files = {"file": ("note.txt", b"hello")}
    for who, status in (("dan", 403), ("rex", 403)):
        heads = team[who]
        assert client.post(f"{base}/metrics", json=points, headers=heads).status_code == status
        assert (
            client.post(f"{base}/params", json={"params": {"a": 1}}, headers=heads).status_code
            == status
        )
        assert client.post(f"{base}/artifacts", files=files, headers=heads).status_code == status
        assert client.post(f"{base}/finish", json={}, headers=heads).status_code == status
    said = client.post(f"{base}/metrics", json=points, headers=team["dan"]).json()["detail"]
    assert said == f"run {run_id} was started by dev: only they or a maintainer may write to it"
    state = client.get(base, headers=team["dev"]).json()
    assert (
        not state["metrics"]
        and not state["params"]
        and state["artifacts"] == []
        and state["run"]["status"] == "running"
    )
    assert client.post(f"{base}/metrics", json=points, headers=team["dev"]).status_code == 201
    assert (
        client.post(f"{base}/params", json={"params": {"a": 1}}, headers=team["mia"]).status_code
        == 201
    )
    assert (
        client.post(f"{base}/finish", json={}, headers=team["mia"]).json()["status"] == "succeeded"
    )


def test_the_project_page_explains_each_role_and_offers_existing_users(client, team):
    login(client, "olive", PASSWORD)
    html = client.get("/projects/lab").text
    client.cookies.clear()
    from reef.store.projects import ROLE_HELP

    for text in ROLE_HELP.values():
        assert text.capitalize() in html
    add = html.split('id="add-member"')[1].split("</form>")[0]
    assert "<option>out</option>" in add and "<option>dev</option>" not in add
    assert '<input name="user"' not in html
