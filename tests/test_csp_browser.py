"""The OpenAPI UI at /schema renders in Chromium under reef's CSP (issue 14, item 8): its
operations appear and the browser reports no blocked script or other error."""

from __future__ import annotations

import pytest
from test_browser import Tab, browser, pytestmark  # noqa: F401  (the fixture, the marks)


def test_openapi_ui_runs_under_the_csp(browser, server) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = Tab(context.new_page(), server.url)
        tab.login()
        resp = tab.page.goto(server.url + "/schema", wait_until="networkidle")
        assert resp is not None and "script-src 'self'" in resp.headers["content-security-policy"]
        operations = tab.page.locator(".opblock")
        operations.first.wait_for()
        assert operations.count() > 50
        assert not tab.errors, tab.errors
    finally:
        context.close()


pytest.importorskip("playwright")
