"""The model page in headless Chromium: an owner edits a gate threshold through the HTMX
form (a typo first, refused inline), then sees a promotion refused with the failing check."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from test_browser import CHROMIUM, Tab, browser  # noqa: F401
from test_models import lab_server

from conftest import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing"),
]
PAGE = "/projects/lab/models/m"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = lab_server(tmp_path_factory.mktemp("lab"), iters=(200, 1))
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Browser, server: Server) -> Iterator[Tab]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Tab(context.new_page(), server.url)
    context.close()


def save_gates(tab: Tab) -> None:
    with tab.page.expect_response(re.compile(r"/models/m/gates$")):
        tab.page.click("#gates button:has-text('Save gates')")


def test_owner_edits_a_gate_and_sees_the_promotion_refused(tab: Tab) -> None:
    tab.login()
    tab.goto(PAGE)
    page = tab.page
    page.evaluate("window.__reefMark = 'still here'")
    page.click("#gates-edit summary")
    page.fill("input[name=metric_0]", "accuracy")
    page.fill("input[name=min_0]", "high")
    save_gates(tab)
    expect(page.locator("#gates [role=alert]")).to_contain_text("metric row 1: min must be")
    expect(page.locator("input[name=min_0]")).to_have_value("high")  # what was typed stays
    page.fill("input[name=min_0]", "0.999")
    save_gates(tab)
    expect(page.locator("#gates .ok")).to_have_text("Gates saved.")
    expect(page.locator("#gates li.gate").first).to_have_text("accuracy must be at least 0.999")
    assert page.evaluate("window.__reefMark") == "still here", "a page load, not an htmx swap"

    page.fill("#monitor-settings input[name=ks_threshold]", "0.35")
    with page.expect_response(re.compile(r"/models/m/monitor$")):
        page.click("#monitor-settings button[type=submit]")
    expect(page.locator("#monitor-settings .ok")).to_have_text("Thresholds saved.")

    promote = page.locator(f"form[action='{PAGE}/versions/1/promote'] button[type=submit]")
    with page.expect_navigation():
        promote.click()
    refusal = page.locator(".refusal")
    expect(refusal.locator("h2")).to_contain_text("Promotion of v1 to production refused")
    failing = refusal.locator("td.error")
    expect(failing).to_have_count(1)
    expect(failing).to_contain_text(re.compile(r"accuracy 0\.\d+ < 0\.999 \(min\)"))
    expected = re.compile(r"(status of|Status Error Code) (400|409) ")  # the refusals
    assert not [e for e in tab.errors if not expected.search(e)], tab.errors


def test_batch_prediction_runs_as_a_job_the_page_follows(tab: Tab) -> None:
    tab.login()
    tab.goto(PAGE)
    page = tab.page
    page.fill("#batch input[name=dataset]", "table")
    page.fill("#batch input[name=output]", "scored")
    with page.expect_response(re.compile(r"/models/m/batch$")):
        page.click("#batch button:has-text('Score')")
    row = page.locator("#batch-jobs tbody tr").first
    expect(row).to_have_attribute("data-status", "done")  # the table polls until then
    link = row.locator("a")
    expect(link).to_have_text("scored v1")
    with page.expect_navigation():
        link.click()
    assert page.url.endswith("/projects/lab/datasets/scored?version=1")
    assert not tab.errors, tab.errors
