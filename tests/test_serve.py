"""`reef serve` itself: first start, the OpenAPI document, and a second start."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from conftest import Server, free_port, wait_healthy

pytestmark = pytest.mark.slow


def serve_without_password(data) -> Server:
    port = free_port()
    log = data.parent / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != "REEF_ADMIN_PASSWORD"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reef.cli", "serve", "--data", str(data), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}", data, proc, log)
    wait_healthy(server)
    return server


def test_first_start_creates_admin_with_a_password_shown_once(tmp_path):
    data = tmp_path / "data"
    first = serve_without_password(data)
    try:
        found = re.search(r"user 'admin' with password (\S+)", first.output())
        assert found, first.output()
        assert first.token("admin", found[1])
    finally:
        assert first.stop() == 0
    second = serve_without_password(data)
    try:
        assert "password" not in second.output()
        assert second.token("admin", found[1])
    finally:
        second.stop()


def test_openapi_document_is_public_and_lists_the_api(server):
    resp = httpx.get(f"{server.url}/schema/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    assert "/api/projects/{project}/models/{model}/predict" in paths
    assert "/api/tokens" in paths
    assert all(p.startswith("/api/") or p == "/healthz" for p in paths), sorted(paths)
    ui = httpx.get(f"{server.url}/schema")
    assert ui.status_code == 200
    assert "cdn" not in ui.text.lower() and "/static/swagger-ui-5.32.0-bundle.js" in ui.text
