"""The import page in headless Chromium: the upload, then the import's progress polled by
htmx, then the dataset page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import test_browser
from playwright.sync_api import Browser, expect

pytestmark = test_browser.pytestmark
browser = test_browser.browser  # the module's Chromium (a fixture)


@pytest.fixture
def tab(browser: Browser, server) -> Iterator[test_browser.Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield test_browser.Tab(context.new_page(), server.url)
    context.close()


def test_import_page_shows_progress_then_the_dataset(tab, server, tmp_path: Path) -> None:
    with server.client() as client:
        client.post("/api/projects", json={"name": "p"}).raise_for_status()
    src = tmp_path / "big.parquet"
    rows = 400_000
    pq.write_table(pa.table({"id": np.arange(rows), "x": np.arange(rows) * 0.5}), src)
    tab.login()
    tab.goto("/projects/p/import-dataset")
    tab.page.set_input_files("input[name=file]", str(src))
    tab.page.fill("input[name=name]", "big")
    tab.page.fill("input[name=message]", "from the browser")
    with tab.page.expect_response(re.compile(r"/projects/p/imports/\d+")):
        tab.page.click("button:has-text('Import')")
    expect(tab.page).to_have_url(re.compile(r"/projects/p/datasets/big$"), timeout=60_000)
    expect(tab.page.locator("body")).to_contain_text("from the browser")
    assert not tab.errors, tab.errors
