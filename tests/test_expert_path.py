"""Issue 12's acceptance walk in headless Chromium: a domain expert goes from an Excel file to
a served model, through pages only, in at most 15 actions (each click, typed field, chosen
option or chosen file counts one; pressing Enter counts one too).

Start-up (through the API, as the issue allows): an admin, a project, the expert's account
and membership. Then the expert uploads an .xlsx of scikit-learn's breast-cancer data
(readable column names, a text label), fixes one wrong cell, trains with "Train a model",
predicts one row through the per-feature form, marks the answer wrong with the correct label,
and comments on the model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from expert_data import RIGHT_LABEL, WRONG_LABEL, cancer_xlsx, diabetes_csv, reviews_csv
from playwright.sync_api import Browser, Page, expect
from test_browser import CHROMIUM, browser  # noqa: F401  (a fixture: one Chromium per module)

from conftest import ADMIN_PASSWORD, Server, patience, start_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing"),
]

PROJECT, EXPERT, EXPERT_PASSWORD = "clinic", "erin", "erin-password-1"
MAX_ACTIONS = 15
COMMENT_ACTIONS = 2  # typing the comment and clicking its button: see the marked place below


@dataclass
class Expert:
    """The browser tab of the expert, counting each of their actions."""

    page: Page
    base: str
    actions: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.actions.append(what)

    def click(self, selector: str) -> None:
        self.page.locator(selector).first.click()
        self.count(f"click {selector}")

    def type(self, selector: str, text: str) -> None:
        self.page.locator(selector).first.fill(text)
        self.count(f"type {selector}")

    def press_enter(self, selector: str) -> None:
        self.page.locator(selector).first.press("Enter")
        self.count(f"enter in {selector}")

    def choose_file(self, selector: str, path: Path) -> None:
        self.page.locator(selector).first.set_input_files(str(path))
        self.count(f"choose file {path.name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("expert")
    srv = start_server(root / "data")
    with httpx.Client(base_url=srv.url, timeout=60) as admin:
        # --- ADMIN STEPS GO HERE (issue 12, acceptance: "the admin creates the expert's account
        # and adds them to a new project"): once the `access` pages land, the admin does this in
        # the browser; until then it is start-up through the API.
        token = admin.post("/api/tokens", auth=("admin", ADMIN_PASSWORD)).json()["token"]
        admin.headers["Authorization"] = f"Bearer {token}"
        admin.post("/api/projects", json={"name": PROJECT}).raise_for_status()
        user = {"name": EXPERT, "password": EXPERT_PASSWORD}
        admin.post("/api/users", json=user).raise_for_status()
        member = {"user": EXPERT, "role": "developer"}
        admin.post(f"/api/projects/{PROJECT}/members", json=member).raise_for_status()
    yield srv
    srv.stop()


@pytest.fixture
def expert(server: Server, browser: Browser) -> Iterator[Expert]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield Expert(page, server.url)
    context.close()
    assert not errors, errors


def log_in_and_upload(expert: Expert, path: Path, dataset: str) -> None:
    """The link the admin sent (the project page asks the expert to log in), then the upload
    from the project page; 5 actions."""
    page = expert.page
    page.goto(f"{expert.base}/projects/{PROJECT}")
    expert.type("input[name=username]", EXPERT)
    expert.type("input[name=password]", EXPERT_PASSWORD)
    with page.expect_navigation():
        expert.click("form[action='/login'] button[type=submit]")
    expect(page.locator("h1")).to_contain_text(PROJECT)
    expert.choose_file("form.upload input[type=file]", path)
    with page.expect_navigation(timeout=patience(60) * 1000):
        expert.click("form.upload button[type=submit]")
    expect(page).to_have_url(re.compile(rf"/datasets/{dataset}$"))


def train_and_open_the_model(expert: Expert, verdict: re.Pattern) -> str:
    """'Train a model' with the preselected target, wait for the verdict, open the model;
    2 actions. Returns the verdict."""
    page = expert.page
    with page.expect_navigation():
        expert.click("#train button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/\d+/result$"))
    said = page.locator("#verdict")
    expect(said).to_contain_text(verdict, timeout=patience(180) * 1000)
    text = said.inner_text()
    with page.expect_navigation():
        expert.click("#model-link")
    return text


def test_expert_goes_from_excel_to_a_served_model(expert: Expert, tmp_path: Path) -> None:
    page = expert.page
    started = time.monotonic()
    log_in_and_upload(expert, cancer_xlsx(tmp_path / "patients.xlsx"), "patients")
    form = page.locator("#train")
    expect(form).to_contain_text("sort rows into 3 groups")  # the typo makes a third group

    # fix the wrong cell: click it, type the right value, Enter
    expert.click(f"#rows td.cell:text-is('{WRONG_LABEL}')")
    expert.type("#rows input[name=value]", RIGHT_LABEL)
    with page.expect_navigation():
        expert.press_enter("#rows input[name=value]")
    expect(page.locator("h1")).to_contain_text("v2")
    expect(form).to_contain_text("The model will sort rows into 2 groups (benign, malignant)")

    # train: the column to predict (diagnosis, the last one) is already chosen
    with page.expect_navigation():
        expert.click("#train button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/\d+/result$"))
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text(
        re.compile(r"Right on \d+ of 11\d held-out rows"), timeout=patience(180) * 1000
    )
    trained_s = time.monotonic() - started
    right = int(re.search(r"Right on (\d+) of", verdict.inner_text())[1])
    assert right >= 100  # breast cancer: about 96% with gradient boosting
    expect(page.locator("#result img[alt='confusion_matrix.svg']")).to_be_visible()
    expect(page.locator("table.importance tr").first).to_be_visible()
    with page.expect_navigation():
        expert.click("#model-link")

    # predict one row through the per-feature form: one value typed, the rest typical
    expect(page.locator("form.try input[name='f:mean radius']")).to_have_attribute(
        "placeholder", re.compile(r"^1\d\.\d+")
    )
    expert.type("form.try input[name='f:worst radius']", "28")
    expert.click("form.try button[type=submit]")
    answer = page.locator("#answer")
    expect(answer).to_contain_text(re.compile(r"(benign|malignant), \d+% sure"))
    said = re.search(r"(benign|malignant), \d+% sure", answer.inner_text())[1]
    other = "benign" if said == "malignant" else "malignant"

    # mark it wrong with the correct label: one button
    expert.click(f"#try-feedback button[value='{other}']")
    expect(page.locator("#feedback-recorded")).to_contain_text(f"the correct answer is {other}")
    expect(page.locator("#feedback-recorded")).to_contain_text("right on 0 of 1 labelled")

    # --- COMMENT STEP GOES HERE (issue 12: "comments on the model"): once the `pages` comments
    # land on the model page, the expert types a comment and posts it (COMMENT_ACTIONS = 2,
    # already counted below), e.g.:
    #   expert.type("#comments textarea[name=text]", "@admin this one is wrong, see feedback")
    #   expert.click("#comments button[type=submit]")
    # --- INBOX CHECK GOES HERE: the admin logs in and sees the feedback and the comment.

    walked_s = time.monotonic() - started
    total = len(expert.actions) + COMMENT_ACTIONS
    print(
        f"\nexpert actions: {len(expert.actions)} (+{COMMENT_ACTIONS} for the comment) = "
        f"{total}; upload to trained model {trained_s:.1f} s; whole walk {walked_s:.1f} s"
    )
    print("\n".join(f"  {i + 1}. {a}" for i, a in enumerate(expert.actions)))
    assert total <= MAX_ACTIONS, expert.actions


@pytest.mark.parametrize("kind", ["regression", "text"])
def test_the_same_walk_for_numbers_and_texts(expert: Expert, tmp_path: Path, kind: str) -> None:
    """Diabetes as CSV (a number to predict) and short labelled messages (texts into groups):
    upload, train, predict one row, give the correct answer."""
    page = expert.page
    started = time.monotonic()
    if kind == "regression":
        log_in_and_upload(expert, diabetes_csv(tmp_path / "diabetes.csv"), "diabetes")
        expect(page.locator("#train")).to_contain_text("The model will predict a number")
        verdict = train_and_open_the_model(
            expert, re.compile(r"Typically off by [\d.]+ \(RMSE\).*explains \d+% of the")
        )
        expert.type("form.try input[name='f:bmi']", "0.05")
        expert.click("form.try button[type=submit]")
        expect(page.locator("#answer")).to_contain_text(re.compile(r"says: \d+"))
        expert.type("#try-feedback input[name=label]", "180")
        expert.click("#try-feedback button[type=submit]")
        expect(page.locator("#feedback-recorded")).to_contain_text("the correct answer is 180")
    else:
        log_in_and_upload(expert, reviews_csv(tmp_path / "messages.csv"), "messages")
        expect(page.locator("#train")).to_contain_text("The model will sort texts into 3 groups")
        verdict = train_and_open_the_model(expert, re.compile(r"Right on \d+ of \d+"))
        expert.type("form.try textarea[name='f:message']", "where is my parcel, when does it come")
        expert.click("form.try button[type=submit]")
        answer = page.locator("#answer")
        expect(answer).to_contain_text(re.compile(r"(complaint|praise|question), \d+% sure"))
        said = re.search(r"(complaint|praise|question), \d+% sure", answer.inner_text())[1]
        if said == "question":
            expert.click("#try-feedback button:text-is('Right')")
        else:
            expert.click("#try-feedback button[value='question']")
        expect(page.locator("#feedback-recorded")).to_contain_text("Live accuracy")
    took = time.monotonic() - started
    print(f"\n{kind}: {verdict!r}; {len(expert.actions)} actions, {took:.1f} s")
    assert len(expert.actions) + COMMENT_ACTIONS <= MAX_ACTIONS, expert.actions
