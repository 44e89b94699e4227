"""The no-code builder, driven with the same form posts htmx sends."""

from __future__ import annotations

import re
from html import unescape as html_unescape

import pytest

from conftest import api_token, csrf, login

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 5},{i % 2}\n".encode() for i in range(40))


@pytest.fixture
def page(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "b"}, headers=headers)
    app_client.post(
        "/api/projects/b/datasets",
        files={"file": ("d.csv", CSV)},
        data={"name": "d"},
        headers=headers,
    )
    login(app_client)
    return app_client, app_client.get("/projects/b/builder").text


def draft_of(html: str) -> str:
    return html_unescape(re.search(r'name="draft" value="([^"]*)"', html)[1])


def act(client, html: str, **fields: str) -> str:
    """One builder change, posted as htmx posts it: the draft, the CSRF token, the fields."""
    body = {"_csrf_token": csrf(html), "draft": draft_of(html), **fields}
    resp = client.post("/projects/b/builder", data=body, headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.text
    return resp.text


def test_build_split_model_evaluate_without_yaml(page):
    client, html = page
    assert "Start by adding a step" in html
    for module in ("library/split", "library/mlp-classifier", "library/evaluate"):
        html = act(client, html, action="add", module=module)
    assert re.findall(r'data-step="([^"]+)"', html)[:3] == ["split", "mlp-classifier", "evaluate"]
    wired = dict(
        re.findall(
            r'data-input="([^"]+)">\s*<option value="">— choose —</option>'
            r"(?:.*?)<option selected>([^<]+)</option>",
            html,
            re.S,
        )
    )
    assert wired == {
        "split.data": "dataset:d",
        "mlp-classifier.train": "split.train",
        "evaluate.model": "mlp-classifier.model",
        "evaluate.test": "split.test",
    }
    assert "Ready: this pipeline can run." in html and '<svg class="dag"' in html
    html = act(client, html, **{"param:mlp-classifier.epochs": "0"})
    assert "must be &gt;= 1" in html  # validated as the user types
    html = act(client, html, **{"param:mlp-classifier.epochs": "3"})
    assert "Ready" in html
    resp = client.post(
        "/projects/b/builder",
        headers={"HX-Request": "true"},
        data={
            "_csrf_token": csrf(html),
            "action": "save",
            "name": "built",
            "draft": re.search(r'name="draft" value="([^"]*)"', html)[1].replace("&#34;", '"'),
        },
    )
    assert resp.headers["hx-redirect"] == "/projects/b/pipelines/built"
    saved = client.get("/projects/b/builder?pipeline=built").text
    assert 'value="3"' in saved and "mlp-classifier" in saved


def test_a_saved_pipeline_with_bare_module_names_opens_in_the_builder(page, app_client):
    client, _ = page
    headers = api_token(app_client)
    steps = [{"name": "split", "module": "split", "inputs": {"data": "dataset:d"}}]
    client.post("/api/projects/b/pipelines", json={"name": "bare", "steps": steps}, headers=headers)
    html = client.get("/projects/b/builder?pipeline=bare").text
    assert "library/split" in html and "Ready" in html
