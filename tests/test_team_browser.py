"""In Chromium, through pages only: the admin creates an account and adds the person to a
new project; the person signs in with the one-time password and picks their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, Tab

from conftest import Server, start_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Browser]]:
    root: Path = tmp_path_factory.mktemp("team")
    srv = start_server(root / "data", extra=("--workers", "0"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield srv, browser
            browser.close()
    finally:
        srv.stop()


def test_admin_creates_a_user_and_adds_them_to_a_project(served):
    srv, browser = served
    admin = Tab(browser.new_context().new_page(), srv.url)
    admin.login()
    admin.page.click("header a[href='/admin/users']")
    admin.page.fill("#new-user input[name=name]", "maria")
    admin.page.click("#new-user button[type=submit]")
    password = admin.page.inner_text("#one-time-password").strip()
    assert len(password) >= 16
    admin.goto("/")
    admin.page.fill("input[name=name]", "team")
    with admin.page.expect_navigation():
        admin.page.click("form[action='/projects'] button[type=submit]")
    admin.page.select_option("#add-member select[name=user]", "maria")
    admin.page.select_option("#add-member select[name=role]", "developer")
    assert "uploads and edits datasets" in admin.page.inner_text("#members")
    with admin.page.expect_navigation():
        admin.page.click("#add-member button[type=submit]")
    row = admin.page.locator("#members tr", has_text="maria")
    assert row.locator("select[name=role]").input_value() == "developer"
    assert admin.errors == []
    admin.page.on("dialog", lambda dialog: dialog.accept())  # "Remove admin from team?"
    owner = admin.page.locator("#members tr", has_text="admin")
    with admin.page.expect_navigation():
        owner.locator("form[action$='/remove'] button").click()
    assert "'admin' is the last owner of project 'team'" in admin.page.inner_text("main")

    maria = Tab(browser.new_context().new_page(), srv.url)
    maria.login("maria", password)
    assert maria.page.url.endswith("/account?first=1")
    maria.page.fill("#password input[name=current]", password)
    maria.page.fill("#password input[name=new]", "maria-own-password")
    maria.page.fill("#password input[name=repeat]", "maria-own-password")
    maria.page.click("#password button[type=submit]")
    assert "Your password was changed" in maria.page.inner_text("main")
    maria.goto("/projects/team")
    assert "Your role: developer" in maria.page.inner_text("main")
    assert maria.errors == []
