"""Bad input gets a 4xx naming what was wrong, never a 5xx; a 5xx shows only a request id;
OPTIONS answers; downloads are named safely (issue 14, items 7 and 8)."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from conftest import api_token
from reef.server import errors
from reef.server.app import create_app
from reef.server.disposition import attachment


@pytest.fixture
def api(app_client):
    app_client.headers.update(api_token(app_client))
    assert app_client.post("/api/projects", json={"name": "lab"}).status_code == 201
    return app_client


def test_options_answers_204_with_every_method_of_the_path(api):
    resp = api.options("/api/projects", headers={"Authorization": ""})
    assert resp.status_code == 204
    assert resp.headers["allow"] == "GET, OPTIONS, POST"
    assert "access-control-allow-origin" not in resp.headers  # no CORS unless configured
    page = api.options("/projects/lab")
    assert page.status_code == 204 and "GET" in page.headers["allow"]


def test_cors_headers_only_for_the_configured_origins(settings):
    allowed = dataclasses.replace(settings, cors_origins="https://app.example")
    with TestClient(create_app(allowed), base_url="http://127.0.0.1") as client:
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        resp = client.options("/api/projects", headers=preflight)
        assert resp.status_code in (200, 204)
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/worker/steps/1/finish", {}, "required field `error`"),
        ("post", "/api/worker/steps/1/finish", {"error": 3}, "error: Expected `str | null`"),
        ("get", "/api/projects/lab/runs/1/logs?step=a&offset=-1", None, "offset"),
        ("post", "/api/worker/steps/1/log?offset=-5", None, "offset"),
    ],
)
def test_bad_fields_are_a_4xx_naming_the_field(api, method, path, body, field):
    resp = api.request(method.upper(), path, json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text


def test_odd_version_or_tag_text_is_a_404(api):
    csv = ("rows.csv", b"a,b\n1,2\n")
    assert api.post("/api/projects/lab/datasets", files={"file": csv}).status_code == 201
    for ref in ["a b", "x%0D%0Ay", "..%2F..", "ü", "-1", "0", "a'b"]:
        resp = api.get(f"/api/projects/lab/datasets/rows/versions/{ref}")
        assert resp.status_code == 404, (ref, resp.text)
    diff = api.get("/api/projects/lab/datasets/rows/diff", params={"from": "x y", "to": "'"})
    assert diff.status_code == 404, diff.text


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_server_error_shows_only_a_request_id():
    @get("/api/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret /etc/reef/path detail")

    app = Litestar([boom], exception_handlers=errors.HANDLERS)
    seen, logger = Records(), logging.getLogger("reef.server")
    logger.addHandler(seen)
    try:
        with TestClient(app) as client:
            resp = client.get("/api/boom")
    finally:
        logger.removeHandler(seen)
    assert resp.status_code == 500
    body = resp.json()
    request_id = body["extra"]["request_id"]
    assert "secret" not in resp.text and "RuntimeError" not in resp.text
    assert request_id in body["detail"]
    logged = [r for r in seen.records if request_id in r.getMessage()]
    assert logged and "secret /etc/reef/path detail" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("name", ['a"b.csv', "evil\r\nSet-Cookie: x=1.txt", "naïve résumé.json"])
def test_content_disposition_is_encoded(name):
    header = attachment(name)
    assert "\r" not in header and "\n" not in header
    fallback = header.split('filename="')[1].split('"')[0]
    assert fallback.isascii() and '"' not in fallback
    assert unquote(header.split("filename*=UTF-8''")[1]) == name


def test_an_artifact_named_with_cr_lf_and_quotes_downloads(api):
    run = api.post("/api/projects/lab/runs", json={"name": "r"}).json()
    name = 'report "final"\r\nX-Injected: 1.txt'
    posted = api.post(
        f"/api/projects/lab/runs/{run['id']}/artifacts",
        data={"step": "script", "name": name},
        files={"file": ("f.txt", b"hello", "application/octet-stream")},
    )
    assert posted.status_code in (200, 201), posted.text
    shown = api.get(f"/api/projects/lab/runs/{run['id']}").json()["artifacts"]
    artifact = next(a for a in shown if a["name"] == name)
    resp = api.get(f"/api/projects/lab/runs/{run['id']}/artifacts/{artifact['id']}")
    assert resp.status_code == 200 and resp.content == b"hello"
    assert "x-injected" not in resp.headers
    disposition = resp.headers["content-disposition"]
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == name


def test_pages_api_and_downloads_carry_the_security_headers(api):
    for path in ["/projects/lab", "/api/projects", "/static/reef.css", "/schema", "/login"]:
        resp = api.get(path)
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert resp.headers["x-content-type-options"] == "nosniff", path
        assert resp.headers["referrer-policy"] == "same-origin", path


def test_templates_have_no_inline_code():
    root = Path(__file__).resolve().parent.parent / "reef" / "templates"
    for template in root.glob("*.html"):
        text = re.sub(r"{#.*?#}", "", template.read_text(), flags=re.S)  # not comments
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", text)
        assert all("application/json" in attrs for attrs in scripts), template.name
        assert not re.search(r"\son[a-z]+\s*=|hx-on", text), template.name
        filters = re.findall(r'hx-trigger="[^"]*?(?<!from:)(?<![\w:-])[a-z]+\[', text)
        assert not filters, template.name  # [conditions] are eval'd
