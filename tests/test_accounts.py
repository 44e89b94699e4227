"""Accounts: users an admin manages, each person's password and tokens, sign-in limits,
token expiry, Secure cookies, and `reef user reset-password` (issues 12 item 1, 14 item 5)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from conftest import ADMIN_PASSWORD, api_token, csrf, free_port, login, modules_dir
from reef.settings import Settings


def make_app(root: Path, base: str = "http://127.0.0.1", **extra) -> TestClient:
    from reef.server.app import create_app

    settings = Settings(
        data_dir=root / "data",
        modules_dir=modules_dir(root),
        admin_password=ADMIN_PASSWORD,
        port=free_port(),
        workers=0,
        **extra,
    )
    return TestClient(create_app(settings), base_url=base)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module; it trusts a proxy, so each test signs in from its own
    X-Forwarded-For address and the per-address limit of one test leaves the others alone."""
    with make_app(tmp_path_factory.mktemp("accounts"), trust_proxy=True) as c:
        yield c


@pytest.fixture(scope="module")
def admin(client) -> dict[str, str]:
    return api_token(client)


def hub(client):
    return client.app.state.hub


def new_user(client, admin, name: str, **body) -> dict:
    resp = client.post("/api/users", json={"name": name, **body}, headers=admin)
    assert resp.status_code == 201, resp.text
    return resp.json()


def basic(client, user: str, password: str, address: str = "10.0.0.1"):
    return client.post("/api/tokens", auth=(user, password), headers={"X-Forwarded-For": address})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_creates_a_user_with_a_one_time_password(client, admin):
    made = new_user(client, admin, "olga")
    assert len(made["password"]) >= 16 and made["must_change_password"] is True
    assert "password_hash" not in made
    refused = basic(client, "olga", made["password"])  # right password, but not olga's own yet
    assert refused.status_code == 403 and "one-time password" in refused.json()["detail"]
    assert refused.json()["extra"]["page"] == "/account?first=1"
    client.cookies.clear()
    page = client.get("/login").text
    resp = client.post(
        "/login",
        data={"username": "olga", "password": made["password"], "_csrf_token": csrf(page)},
        follow_redirects=False,
    )
    assert resp.headers["location"] == "/account?first=1"  # choose one's own password first
    assert "choose your own" in client.get("/account").text
    elsewhere = client.get("/", follow_redirects=False)  # any other page: back to the account
    assert elsewhere.status_code == 302 and elsewhere.headers["location"] == "/account?first=1"
    changed = client.post(
        "/api/account/password",
        json={"current": made["password"], "new": "olga-own-password"},
        auth=("olga", made["password"]),
    )
    assert changed.is_success, changed.text
    assert basic(client, "olga", "olga-own-password").status_code == 201
    client.cookies.clear()


def test_an_invite_link_lets_the_person_choose_a_password_once(client, admin):
    made = new_user(client, admin, "ines", invite=True)
    assert "password" not in made
    token = made["invite_url"].rsplit("/invite/", 1)[1]
    assert "Welcome, ines" in client.get(f"/invite/{token}").text
    short = client.post(f"/api/invites/{token}", json={"password": "short"})
    assert short.status_code == 400 and "8 characters" in short.json()["detail"]
    assert client.post(f"/api/invites/{token}", json={"password": "ines-chose-this"}).is_success
    assert basic(client, "ines", "ines-chose-this").status_code == 201
    again = client.post(f"/api/invites/{token}", json={"password": "someone-else"})
    assert again.status_code == 404 and "already used" in again.json()["detail"]
    assert basic(client, "ines", "someone-else").status_code == 401


def test_a_disabled_user_cannot_sign_in_or_use_tokens(client, admin):
    new_user(client, admin, "dora", password="dora-password")
    token = basic(client, "dora", "dora-password").json()["token"]
    assert client.get("/api/projects", headers=bearer(token)).is_success
    resp = client.patch("/api/users/dora", json={"disabled": True}, headers=admin)
    assert resp.json()["disabled"] is True
    assert client.get("/api/projects", headers=bearer(token)).status_code == 401
    refused = basic(client, "dora", "dora-password")
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    client.patch("/api/users/dora", json={"disabled": False}, headers=admin)
    assert client.get("/api/projects", headers=bearer(token)).is_success


def test_reset_password_gives_a_new_one_time_password_or_link(client, admin):
    new_user(client, admin, "rita", password="rita-password")
    resp = client.post("/api/users/rita/reset-password", json={}, headers=admin)
    fresh = resp.json()["password"]
    assert basic(client, "rita", "rita-password").status_code == 401
    assert basic(client, "rita", fresh).status_code == 403  # right, but one-time: change it
    link = client.post("/api/users/rita/reset-password", json={"invite": True}, headers=admin)
    assert "/invite/" in link.json()["invite_url"]
    assert basic(client, "rita", fresh).status_code == 401  # a link ends the old password


def test_delete_a_user_but_not_the_last_owner_of_a_project(client, admin):
    new_user(client, admin, "otto", password="otto-password")
    otto = api_token(client, "otto", "otto-password")
    assert client.post("/api/projects", json={"name": "ottos"}, headers=otto).status_code == 201
    resp = client.delete("/api/users/otto", headers=admin)
    assert resp.status_code == 409 and "last owner of ottos" in resp.json()["detail"]
    assert client.get("/api/projects", headers=otto).is_success  # nothing changed
    new_user(client, admin, "temp", password="temp-password")
    assert client.delete("/api/users/temp", headers=admin).status_code == 204
    assert client.get("/api/users/temp", headers=admin).status_code == 404
    assert client.delete("/api/users/admin", headers=admin).status_code == 409


def test_bad_user_input_is_a_clear_400_and_changes_nothing(client, admin):
    before = client.get("/api/users", headers=admin).json()
    cases = [
        ({"name": "Bad Name"}, "invalid user name"),
        ({"name": "shorty", "password": "short"}, "8 characters"),
        ({"name": "x1", "role": "owner"}, "role"),  # an unknown field, named
        ({"password": "long-enough"}, "name"),
    ]
    for body, says in cases:
        resp = client.post("/api/users", json=body, headers=admin)
        assert resp.status_code == 400, (body, resp.text)
        assert says in resp.text, (body, resp.text)
    assert client.post("/api/users", json={"name": "olga"}, headers=admin).status_code == 409
    assert client.get("/api/users", headers=admin).json() == before
    new_user(client, admin, "ivo", password="ivo-password")  # not an administrator
    user = {"name": "nobody", "password": "nobody-password"}
    ivo = api_token(client, "ivo", "ivo-password")
    assert client.post("/api/users", json=user, headers=ivo).status_code == 403


def test_each_person_changes_their_password(client, admin):
    new_user(client, admin, "paul", password="paul-password")
    paul = api_token(client, "paul", "paul-password")
    wrong = client.post(
        "/api/account/password", json={"current": "nope-nope", "new": "paul-new-pw"}, headers=paul
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.json()["detail"]
    ok = client.post(
        "/api/account/password",
        json={"current": "paul-password", "new": "paul-new-pw"},
        headers=paul,
    )
    assert ok.is_success
    assert basic(client, "paul", "paul-new-pw").status_code == 201


def test_changing_the_password_ends_the_other_browser_sessions(client, admin):
    new_user(client, admin, "quinn", password="quinn-password")
    sessions = []
    for _ in range(2):  # two browsers: a laptop, and a shared machine left signed in
        client.cookies.clear()
        login(client, "quinn", "quinn-password")
        sessions.append(dict(client.cookies))
    client.cookies.clear()
    client.cookies.update(sessions[0])
    page = client.get("/account").text
    changed = client.post(
        "/account/password",
        data={
            "current": "quinn-password",
            "new": "quinn-new-pw",
            "repeat": "quinn-new-pw",
            "_csrf_token": csrf(page),
        },
    )
    assert "Your password was changed" in changed.text
    assert client.get("/account", follow_redirects=False).status_code == 200  # this one stays
    client.cookies.clear()
    client.cookies.update(sessions[1])
    ended = client.get("/account", follow_redirects=False)
    assert ended.status_code == 302 and ended.headers["location"].startswith("/login")
    client.cookies.clear()


def test_tokens_have_a_name_an_optional_expiry_and_can_be_revoked(client, admin):
    new_user(client, admin, "tina", password="tina-password")
    tina = api_token(client, "tina", "tina-password")
    made = client.post(
        "/api/account/tokens", json={"name": "laptop", "expires_days": 30}, headers=tina
    ).json()
    assert made["token"].startswith("reef_") and made["expires_at"] is not None
    assert client.get("/api/projects", headers=bearer(made["token"])).is_success
    listed = {t["name"]: t for t in client.get("/api/account/tokens", headers=tina).json()}
    assert listed["laptop"]["last_used_at"] is not None and "token" not in listed["laptop"]
    bad = client.post("/api/account/tokens", json={"name": "x", "expires_days": 0}, headers=tina)
    assert bad.status_code == 400 and "expires_days" in bad.text
    assert client.delete(f"/api/account/tokens/{made['id']}", headers=tina).status_code == 204
    assert client.get("/api/projects", headers=bearer(made["token"])).status_code == 401
    assert client.delete(f"/api/account/tokens/{made['id']}", headers=tina).status_code == 404


def test_an_expired_token_is_refused_with_token_expired(client, admin):
    people = hub(client).people
    uid = people.user("admin")["id"]
    old = people.issue_token(uid, "api", "old", ttl=timedelta(seconds=-1))
    resp = client.get("/api/projects", headers=bearer(old))
    assert resp.status_code == 401 and resp.json()["detail"] == "token expired"
    listed = client.get("/api/account/tokens", headers=admin).json()
    assert [t["expired"] for t in listed if t["name"] == "old"] == [True]


def test_the_eleventh_wrong_password_in_a_minute_is_refused(client, admin):
    new_user(client, admin, "lena", password="lena-password")
    for i in range(10):  # each from another address: the per-user limit counts them all
        assert basic(client, "lena", "wrong-password", f"10.1.0.{i}").status_code == 401
    locked = basic(client, "lena", "lena-password", "10.1.0.99")  # right password, locked
    assert locked.status_code == 429
    assert "too many failed sign-ins for this user" in locked.json()["detail"]
    page = client.get("/login").text
    form = {"username": "lena", "password": "lena-password", "_csrf_token": csrf(page)}
    resp = client.post("/login", data=form, headers={"X-Forwarded-For": "10.1.0.98"})
    assert resp.status_code == 429 and "too many failed sign-ins" in resp.text
    client.cookies.clear()
    assert basic(client, "admin", ADMIN_PASSWORD, "10.1.0.97").status_code == 201


def test_per_address_limit_and_unknown_names_answer_alike(client):
    for i in range(10):  # unknown names: the same answer as a wrong password
        resp = basic(client, f"ghost{i}", "whatever-pw", "10.2.0.1")
        assert resp.status_code == 401 and resp.json()["detail"] == "wrong user name or password"
    locked = basic(client, "admin", ADMIN_PASSWORD, "10.2.0.1")
    assert locked.status_code == 429 and "this address" in locked.json()["detail"]
    assert basic(client, "admin", ADMIN_PASSWORD, "10.2.0.2").status_code == 201


def test_session_cookie_is_secure_behind_a_trusted_https_proxy(client):
    def login(headers: dict) -> str:
        client.cookies.clear()
        page = client.get("/login").text
        form = {"username": "admin", "password": ADMIN_PASSWORD, "_csrf_token": csrf(page)}
        resp = client.post("/login", data=form, headers=headers, follow_redirects=False)
        return next(v for k, v in resp.headers.multi_items() if "reef_session=" in v)

    assert "secure" not in login({"X-Forwarded-For": "10.3.0.1"}).lower()
    https = {"X-Forwarded-For": "10.3.0.1", "X-Forwarded-Proto": "https"}
    assert "secure" in login(https).lower()
    client.cookies.clear()


def test_secure_cookies_setting_and_untrusted_proxy_headers(tmp_path):
    # Secure cookies (the CSRF one too) come back only over HTTPS: the client speaks it
    with make_app(tmp_path, "https://127.0.0.1", secure_cookies=True) as c:
        page = c.get("/login").text
        form = {"username": "admin", "password": ADMIN_PASSWORD, "_csrf_token": csrf(page)}
        resp = c.post("/login", data=form, follow_redirects=False)
        cookie = next(v for k, v in resp.headers.multi_items() if "reef_session=" in v)
        assert "secure" in cookie.lower()
        # without --trust-proxy, X-Forwarded-For is ignored: the address is the real one
        for i in range(10):
            spoofed = {"X-Forwarded-For": f"10.9.0.{i}"}
            c.post("/api/tokens", auth=(f"nobody{i}", "bad-password"), headers=spoofed)
        assert c.post("/api/tokens", auth=("admin", ADMIN_PASSWORD)).status_code == 429


def test_cli_reset_password_needs_the_server_stopped(client, tmp_path):
    data = hub(client).settings.data_dir
    cmd = [sys.executable, "-m", "reef.cli", "user", "reset-password", "admin", "--data"]
    busy = subprocess.run([*cmd, str(data)], capture_output=True, text=True)
    assert busy.returncode == 2 and "in use by a running reef server" in busy.stderr
    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS
    from reef.store.people import People

    db = Database(tmp_path / "stopped" / "reef.duckdb")
    db.migrate(MIGRATIONS)
    People(db).create_user("admin", "forgotten-password", is_admin=True)
    db.close()
    done = subprocess.run([*cmd, str(tmp_path / "stopped")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    password = done.stdout.split(": ", 1)[1].split()[0]
    db = Database(tmp_path / "stopped" / "reef.duckdb")
    people = People(db)
    assert people.check_password("admin", password).name == "admin"
    assert people.user("admin")["must_change_password"] is True
    db.close()
    missing = subprocess.run(
        [*cmd[:-2], "nobody", "--data", str(tmp_path / "stopped")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "user 'nobody' not found" in missing.stderr


def page_post(client, path: str, form: dict, page: str = "/account"):
    token = csrf(client.get(page).text)
    return client.post(path, data={**form, "_csrf_token": token}, follow_redirects=False)


def test_admin_pages_invite_disable_reset_and_delete(client, admin):
    login(client)
    made = page_post(client, "/admin/users", {"name": "pia", "how": "invite"}, "/admin/users")
    assert made.status_code == 200
    link = re.search(r'id="invite-url">([^<]+)<', made.text).group(1)
    client.cookies.clear()
    path = urlsplit(link).path
    done = page_post(client, path, {"password": "pia-password", "repeat": "pia-password"}, path)
    assert done.headers["location"] == "/login?welcome=1"
    assert basic(client, "pia", "pia-password").status_code == 201
    login(client)
    assert page_post(client, "/admin/users/pia/disable", {}, "/admin/users").status_code == 302
    assert basic(client, "pia", "pia-password").status_code == 401
    page_post(client, "/admin/users/pia/enable", {}, "/admin/users")
    reset = page_post(client, "/admin/users/pia/reset", {"how": "password"}, "/admin/users")
    fresh = re.search(r'id="one-time-password">([^<]+)<', reset.text).group(1)
    assert basic(client, "pia", fresh).status_code == 403  # one-time: pia chooses her own
    page_post(client, "/admin/users/pia/allow-projects", {}, "/admin/users")
    assert client.get("/api/users/pia", headers=admin).json()["may_create_projects"] is True
    mode = {"project_creation": "admins"}
    assert page_post(client, "/admin/settings", mode, "/admin/users").status_code == 302
    assert client.get("/api/site-settings", headers=admin).json() == mode
    bad = page_post(client, "/admin/settings", {"project_creation": "all"}, "/admin/users")
    assert bad.status_code == 400 and "must be one of" in bad.text
    page_post(client, "/admin/settings", {"project_creation": "everyone"}, "/admin/users")
    page_post(client, "/admin/users/pia/delete", {}, "/admin/users")
    assert "pia" not in [u["name"] for u in client.get("/api/users", headers=admin).json()]
    client.cookies.clear()


def test_account_page_makes_shows_once_and_revokes_a_token(client, admin):
    new_user(client, admin, "kim", password="kim-password")
    login(client, "kim", "kim-password")
    made = page_post(client, "/account/tokens", {"name": "ci", "expires_days": "7"})
    token = re.search(r'id="token-value">([^<]+)<', made.text).group(1)
    assert client.get("/api/projects", headers=bearer(token)).is_success
    listed = client.get("/account").text
    assert token not in listed and "ci" in listed
    token_id = re.search(r"/account/tokens/(\w+)/revoke", listed).group(1)
    assert page_post(client, f"/account/tokens/{token_id}/revoke", {}).status_code == 302
    assert client.get("/api/projects", headers=bearer(token)).status_code == 401
    client.cookies.clear()


def test_openapi_documents_the_bodies_and_how_to_authorize(client):
    doc = client.get("/schema/openapi.json").json()
    assert {"token", "password"} <= set(doc["components"]["securitySchemes"])
    for name in ("NewUser", "UserChange", "NewToken", "NewMember", "PasswordChange"):
        assert name in doc["components"]["schemas"], name
