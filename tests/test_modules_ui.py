"""The module catalog, new modules from the template, and runs started from generated forms."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import api_token, csrf, login, wait_run

CSV = b"a,b,y\n" + b"".join(f"{i},{i % 7},{i % 3}\n".encode() for i in range(60))


@pytest.fixture
def api(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p"}, headers=headers)
    app_client.post(
        "/api/projects/p/datasets",
        files={"file": ("d.csv", CSV)},
        data={"name": "d"},
        headers=headers,
    )
    return app_client, headers


def test_catalog_search_and_kind_filter(api):
    client, headers = api
    client.post(
        "/api/projects/p/modules",
        json={"name": "cleaner", "description": "tidy rows"},
        headers=headers,
    )
    own = client.get("/api/projects/p/modules", headers=headers).json()
    assert [m["name"] for m in own] == ["cleaner"]
    login(client)
    page = client.get("/projects/p/modules?kind=model")
    names = re.findall(r'data-module="([^"]+)"', page.text)
    assert "library/mlp-classifier" in names and "library/split" not in names
    found = client.get("/projects/p/modules?q=tidy", headers={"HX-Request": "true"})
    assert re.findall(r'data-module="([^"]+)"', found.text) == ["p/cleaner"]
    assert "<html" not in found.text  # an htmx request gets the cards only


def test_new_module_from_the_template(api):
    client, headers = api
    resp = client.post(
        "/api/projects/p/modules", json={"name": "cleaner", "kind": "model"}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["manifest"]["kind"] == "model" and len(body["commit"]) == 40
    again = client.post("/api/projects/p/modules", json={"name": "cleaner"}, headers=headers)
    assert again.status_code == 400 and "already exists" in again.json()["detail"]
    bad = client.post("/api/projects/p/modules", json={"name": "Bad Name"}, headers=headers)
    assert bad.status_code == 400 and "invalid module name" in bad.json()["detail"]


def test_run_form_offers_the_columns_of_the_chosen_dataset(api):
    client, _ = api
    login(client)
    page = client.get("/projects/p/run?module=library/split")
    assert page.status_code == 200
    label = re.search(r'<select name="param.label"[^>]*>(.*?)</select>', page.text, re.S)[1]
    # the default 'label' is no column of d: the person picks one instead of keeping it
    assert re.findall(r"<option[^>]*>([^<]+)</option>", label) == [
        "— choose a column —",
        "a",
        "b",
        "y",
    ]
    assert 'name="input.data"' in page.text and "dataset:d@1" in page.text
    assert '<option value="dataset:d@1" selected>d, version 1</option>' in page.text  # in words


@pytest.mark.slow
def test_a_module_made_by_one_user_is_run_by_another_who_only_fills_the_form(server):
    admin = server.client()
    admin.post("/api/users", json={"name": "ada", "password": "ada-password"})
    admin.post("/api/users", json={"name": "lex", "password": "lex-password"})
    admin.post("/api/projects", json={"name": "legal"})
    for user in ("ada", "lex"):
        admin.post("/api/projects/legal/members", json={"user": user, "role": "developer"})
    ada = server.client(server.token("ada", "ada-password"))
    ada.post("/api/projects/legal/modules", json={"name": "doubler", "description": "x2"})
    ada.post(
        "/api/projects/legal/datasets",
        files={"file": ("c.csv", b"v,label\n1.5,0\n2.5,1\n")},
        data={"name": "cases"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as lex:  # a browser session
        token = csrf(lex.get("/login").text)
        lex.post(
            "/login", data={"username": "lex", "password": "lex-password", "_csrf_token": token}
        )
        form = lex.get("/projects/legal/run?module=legal/doubler").text
        fields = {
            "_csrf_token": csrf(form),
            "module": "legal/doubler",
            "input.data": "dataset:cases@1",
            "param.label": "label",
            "param.factor": "2",
        }
        resp = lex.post("/projects/legal/run", data=fields, follow_redirects=False)
        assert resp.status_code in (302, 303), resp.text
        run_id = int(resp.headers["location"].rsplit("/", 1)[1])
    state = wait_run(admin, "legal", run_id)
    assert state["run"]["status"] == "succeeded", state
    assert state["run"]["created_by"] == "lex"
    assert state["steps"][0]["module"] == "legal/doubler"
    assert state["steps"][0]["params"] == {"label": "label", "factor": 2.0}
    log = admin.get(f"/api/projects/legal/runs/{run_id}/logs?step=doubler").json()["text"]
    assert "by 2.0" in log
    bad = ada.post(
        "/api/projects/legal/runs",
        json={
            "module": "legal/doubler",
            "inputs": {"data": "dataset:cases"},
            "params": {"factor": -1},
        },
    )
    assert bad.status_code == 400 and "must be >= 0.0" in bad.json()["detail"]


def test_pipeline_page_renders_a_form_per_step(api):
    client, headers = api
    steps = [
        {
            "name": "split",
            "module": "split",
            "inputs": {"data": "dataset:d"},
            "params": {"label": "y"},
        }
    ]
    resp = client.post(
        "/api/projects/p/pipelines", json={"name": "one", "steps": steps}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    login(client)
    page = client.get("/projects/p/pipelines/one")
    assert page.status_code == 200
    assert 'name="split.test_size"' in page.text and 'name="split.stratify"' in page.text


def test_code_browser_and_diff_between_versions(api):
    client, headers = api
    client.post("/api/projects/p/modules", json={"name": "cleaner"}, headers=headers)
    hub = client.app.state.hub
    first = hub.modules.head("p", "cleaner")
    files = {
        path: hub.modules.read_file("p", "cleaner", first, path)
        for path in ("reef.toml", "main.py", "README.md")
    }
    files["reef.toml"] = files["reef.toml"].replace(b"default = 1.0", b"default = 2.0")
    second = hub.modules.commit_files("p", "cleaner", files, "double it", "ada <a@b>")
    tree = client.get("/api/projects/p/modules/cleaner/tree", headers=headers).json()
    assert [e["name"] for e in tree["entries"]] == ["README.md", "main.py", "reef.toml"]
    text = client.get("/api/projects/p/modules/cleaner/tree?path=main.py", headers=headers)
    assert "reef.step()" in text.json()["text"]
    diff = client.get(f"/api/projects/p/modules/cleaner/diff?old={first}", headers=headers)
    body = diff.json()
    assert body["to"] == second
    assert [(f["path"], f["status"]) for f in body["files"]] == [("reef.toml", "modified")]
    assert "-default = 1.0" in body["files"][0]["patch"]
    assert "+default = 2.0" in body["files"][0]["patch"]
    login(client)
    page = client.get("/projects/p/modules/cleaner/diff").text  # default: the last change
    assert 'class="add">+default = 2.0' in page
    missing = client.get("/api/projects/p/modules/cleaner/tree?path=nope.py", headers=headers)
    assert missing.status_code == 404


def test_readme_is_rendered_without_letting_html_through(api):
    from reef.server.modules import render_markdown

    html = render_markdown("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n")
    assert "<h1>Title</h1>" in html and "<script>" not in html
    assert 'href="javascript' not in html
    client, _ = api
    login(client)
    page = client.get("/projects/library/modules/split").text
    assert "<h1>split</h1>" in page


def test_the_pipeline_form_runs_with_every_field_as_rendered(api):
    """Submit the pipeline page's form exactly as the browser would, bool fields included."""
    client, headers = api
    steps = [
        {
            "name": "split",
            "module": "split",
            "inputs": {"data": "dataset:d"},
            "params": {"label": "y"},
        }
    ]
    client.post("/api/projects/p/pipelines", json={"name": "one", "steps": steps}, headers=headers)
    login(client)
    page = client.get("/projects/p/pipelines/one").text
    form = page[page.index('action="/projects/p/pipelines/one/runs"') :]
    form = form[: form.index("</form>")]
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
    for name, body in re.findall(r'<select name="([^"]+)">(.*?)</select>', form, re.S):
        fields[name] = re.search(r'<option value="([^"]*)" selected', body)[1]
    fields["split.stratify"] = "false"
    resp = client.post("/projects/p/pipelines/one/runs", data=fields, follow_redirects=False)
    assert resp.status_code in (302, 303), resp.text
    run = client.get("/api/projects/p/runs", headers=headers).json()[0]
    params = client.get(f"/api/projects/p/runs/{run['id']}", headers=headers).json()["steps"]
    assert params[0]["params"]["stratify"] is False
