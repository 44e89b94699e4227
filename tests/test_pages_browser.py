"""Two pages in headless Chromium: the builder keeps a 'no' as 'no' through later changes and
saves it so; a mention reaches the other person's header badge, and reading clears it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from test_browser import CHROMIUM, Tab, browser  # noqa: F401
from test_models import labelled_table, register

from conftest import ADMIN_PASSWORD, Server, start_server
from reef.hub import Hub
from reef.runtime.dataset_versions import new_version
from reef.settings import Settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing"),
]
BOB = ("bob", "bob-password-for-tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Project `lab` (owned by admin) with dataset `table` and model `m`; bob is a developer."""
    root = tmp_path_factory.mktemp("pages")
    hub = Hub.open(Settings(data_dir=root / "data", admin_password=ADMIN_PASSWORD), False)
    hub.projects.create("lab", hub.admin(), "")
    register(hub, root)
    info = hub.datasets.write_table("lab", "table", labelled_table())
    new_version(hub, "admin", "lab", "table", info, "first cut", "test")
    hub.people.create_user(*BOB)
    hub.projects.set_member("lab", hub.people.user("bob"), "developer", "owner")
    hub.close()
    srv = start_server(root / "data")
    yield srv
    srv.stop()


@pytest.fixture
def open_tab(browser: Browser, server: Server) -> Iterator:  # noqa: F811
    contexts = []

    def new_tab(user: str = "admin", password: str = ADMIN_PASSWORD) -> Tab:
        contexts.append(browser.new_context(viewport={"width": 1280, "height": 900}))
        tab = Tab(contexts[-1].new_page(), server.url)
        tab.login(user, password)
        return tab

    yield new_tab
    for c in contexts:
        c.close()


def builder_change(tab: Tab, action) -> None:
    """Do something that re-renders the builder, and wait for the new one."""
    with tab.page.expect_response(re.compile(r"/projects/lab/builder$")):
        action()
    tab.page.wait_for_load_state("networkidle")


def test_the_builder_keeps_no_as_no_and_saves_it(open_tab) -> None:
    tab = open_tab()
    tab.goto("/projects/lab/builder")
    tab.page.select_option("#builder-module", "library/split")
    builder_change(tab, lambda: tab.page.click("button:has-text('Add step')"))
    stratify = "select[name='param:split.stratify']"
    expect(tab.page.locator(stratify)).to_have_value("true")
    builder_change(tab, lambda: tab.page.select_option(stratify, "false"))
    expect(tab.page.locator(stratify)).to_have_value("false")
    # another change re-renders the whole form: 'no' must come back as 'no'
    size = "input[name='param:split.test_size']"
    builder_change(tab, lambda: (tab.page.fill(size, "0.3"), tab.page.press(size, "Tab")))
    expect(tab.page.locator(stratify)).to_have_value("false")
    expect(tab.page.locator("#builder-status")).to_have_text("Ready: this pipeline can run.")
    name = "input[name=name]"
    builder_change(tab, lambda: (tab.page.fill(name, "nostrat"), tab.page.press(name, "Tab")))
    with tab.page.expect_navigation(url=re.compile(r"/pipelines/nostrat$")):
        tab.page.click("button:has-text('Save pipeline')")
    # the saved pipeline holds false: its run form shows 'no'
    expect(tab.page.locator("select[name='split.stratify']")).to_have_value("false")
    assert not tab.errors, tab.errors


def test_a_mention_lights_the_badge_and_reading_clears_it(open_tab) -> None:
    bob = open_tab(*BOB)
    bob.goto("/projects/lab/models/m")
    comments = bob.page.locator("#comments")
    comments.locator("textarea[name=text]").fill("@admin the recall looks low, @nobody")
    with bob.page.expect_response(re.compile(r"/comments/model/m$")):
        comments.locator("button:has-text('Comment')").click()
    expect(bob.page.locator("#comments .note")).to_contain_text("@nobody not notified")
    admin = open_tab()
    admin.goto("/projects/lab")
    badge = admin.page.locator("#inbox-badge .count")
    expect(badge).to_have_text("1")
    admin.page.click("#inbox-badge")
    admin.page.wait_for_load_state("networkidle")
    expect(admin.page.locator("ul.inbox li.unread a")).to_have_text("bob mentioned you on model m")
    admin.page.click("button:has-text('Mark all read')")
    expect(admin.page.locator("#inbox-badge .count")).to_have_count(0)
    expect(admin.page.locator("ul.inbox li.unread")).to_have_count(0)
    assert not bob.errors and not admin.errors, bob.errors + admin.errors
