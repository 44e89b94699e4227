"""Issue 17's labeling acceptance in headless Chromium, on one real `reef serve`:

- two annotators label the 20 rows of a text dataset with the keyboard, answering differently
  on 5; the dataset page shows their agreement; the project requires review, so publishing is
  refused until a reviewer resolves the 5; publishing then makes ONE version whose labels are
  the agreed ones, and the diff against the version before shows exactly those label cells;
- an image dataset (scikit-learn digits as PNGs in a zip) is labelled with the keyboard only.

The start-up (project, accounts, uploads) goes through the API, and so does the
model-assisted check: a model trained with "Train a model" on iris suggests the species of new
rows, least-confident first, and "retrain" runs its pipeline again.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from test_browser import CHROMIUM, browser  # noqa: F401  (a fixture: one Chromium per module)

from conftest import ADMIN_PASSWORD, Server, patience, start_server, wait_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing"),
]

PROJECT, PASSWORD = "news", "annotator-password-1"
TEXTS = [f"review {i}: {'great' if i % 2 else 'awful'} product" for i in range(20)]
TRUTH = {i: "pos" if i % 2 else "neg" for i in range(20)}  # row ids are 0..19
FLIPPED = {0, 1, 2, 3, 4}  # bob answers these the other way
KEYS = {"pos": "1", "neg": "2"}
expect.set_options(timeout=patience(30) * 1000)  # a loaded box answers slowly


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("labeling") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin_api(server: Server) -> Iterator[httpx.Client]:
    """The admin's API client, after the start-up: project, annotators, both datasets."""
    with server.client() as api:
        api.post("/api/projects", json={"name": PROJECT}).raise_for_status()
        for name in ("ann", "bob"):
            api.post("/api/users", json={"name": name, "password": PASSWORD}).raise_for_status()
            member = {"user": name, "role": "reporter"}
            api.post(f"/api/projects/{PROJECT}/members", json=member).raise_for_status()
        csv = "id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(TEXTS))
        upload(api, "reviews.csv", csv.encode())
        upload(api, "digits.zip", digits_zip())
        yield api


def upload(api: httpx.Client, filename: str, content: bytes) -> None:
    resp = api.post(f"/api/projects/{PROJECT}/datasets", files={"file": (filename, content)})
    assert resp.status_code == 201, resp.text


def digits_zip() -> bytes:
    """Six 8x8 digits (0, 1, 2) from scikit-learn, scaled up, as PNGs in one folder; the
    file name carries the true digit."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n, i in enumerate([i for i, t in enumerate(digits.target) if t < 3][:6]):
            pixels = (digits.images[i] * 255 / 16).astype("uint8")
            png = io.BytesIO()
            Image.fromarray(pixels).resize((32, 32)).save(png, format="PNG")
            z.writestr(f"unsorted/img{n}_digit{digits.target[i]}.png", png.getvalue())
    return out.getvalue()


@pytest.fixture
def new_page(server: Server, browser: Browser) -> Iterator[Callable[[str, str], Page]]:  # noqa: F811
    """A signed-in page per person, each in its own context; no page may raise a script error."""
    contexts, errors = [], []

    def open_as(user: str, password: str = PASSWORD) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form[action='/login'] button[type=submit]")
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert not errors, errors


def label_with_keys(page: Page, answer: Callable[[int, str], str], count: int) -> None:
    """Label `count` items with the keyboard, each with the key `answer(row, text)` gives."""
    for done in range(1, count + 1):
        settled(page)
        item = page.locator("#label-item .label-row")
        row = int(item.get_attribute("data-row"))
        page.keyboard.press(answer(row, item.inner_text()))
        expect(page.locator("#label-item .done")).to_have_text(str(done))
    expect(page.locator("#label-item .all-done")).to_be_visible()


def settled(page: Page) -> None:
    """Wait until the item htmx swapped in is wired (keys pressed before then are ignored)."""
    expect(page.locator("#label-item.htmx-added, #label-item.htmx-settling")).to_have_count(0)


def versions(api: httpx.Client, dataset: str) -> list[int]:
    found = api.get(f"/api/projects/{PROJECT}/datasets/{dataset}/versions").json()
    return [v["version"] for v in found]


def test_two_annotators_agreement_review_and_one_version(
    server: Server, admin_api: httpx.Client, new_page: Callable[..., Page]
) -> None:
    base = f"{server.url}/projects/{PROJECT}/datasets/reviews"
    admin = new_page("admin", ADMIN_PASSWORD)
    admin.goto(base)
    admin.click("#labeling a:has-text('Start labeling')")
    admin.fill("#setup-form input[name=new_column]", "sentiment")
    admin.fill("#setup-form textarea[name=labels]", "pos\nneg")
    with admin.expect_navigation():
        admin.click("#setup-form button[type=submit]")
    for person in ("ann", "bob"):
        admin.check(f"#assign-form input[name=annotator][value={person}]")
    admin.fill("#assign-form input[name=per_row]", "2")
    with admin.expect_navigation():
        admin.click("#assign-form button[type=submit]")
    admin.check("#review-settings input[name=review_required]")
    with admin.expect_navigation():
        admin.click("#review-settings button[type=submit]")

    for person, flipped in (("ann", set()), ("bob", FLIPPED)):
        page = new_page(person)
        page.goto(f"{base}/labeling?column=sentiment")
        expect(page.locator("#label-item progress")).to_have_attribute("max", "20")

        def answer(row: int, text: str, flipped: set[int] = flipped) -> str:
            label = "pos" if "great" in text else "neg"
            return KEYS["neg" if label == "pos" else "pos"] if row in flipped else KEYS[label]

        label_with_keys(page, answer, 20)

    admin.goto(base)
    agreement = admin.locator("#labeling .agreement")
    expect(agreement).to_contain_text("15 of 20 got the same label")
    expect(admin.locator("#labeling .kappa")).to_have_text(re.compile(r"^0\.\d\d$"))
    expect(admin.locator("#labeling .kappa-help")).to_contain_text("no better than chance")

    admin.goto(f"{base}/labeling?column=sentiment")  # review first: publishing is refused
    admin.fill("#publish-form input[name=message]", "labels from ann and bob")
    admin.click("#publish-form button[type=submit]")
    expect(admin.locator("#flash")).to_contain_text("5 rows have unresolved disagreements")
    assert versions(admin_api, "reviews") == [2, 1]

    admin.click("#review-link")
    for row in sorted(FLIPPED):
        admin.click(f"#review-{row} button:has-text('{TRUTH[row]}')")
        expect(admin.locator(f"#review-{row} .decided")).to_contain_text(TRUTH[row])
    admin.goto(f"{base}/labeling?column=sentiment")
    admin.fill("#publish-form input[name=message]", "labels from ann and bob")
    with admin.expect_navigation(url=re.compile(r"/datasets/reviews$")):
        admin.click("#publish-form button[type=submit]")

    assert versions(admin_api, "reviews") == [3, 2, 1]  # ONE new version
    rows = admin_api.get(f"/api/projects/{PROJECT}/datasets/reviews/versions/3/rows").json()
    at = {c: i for i, c in enumerate(rows["columns"])}
    assert {r[at["id"]]: r[at["sentiment"]] for r in rows["rows"]} == TRUTH
    diff = admin_api.get(f"/api/projects/{PROJECT}/datasets/reviews/diff?from=2&to=3").json()
    assert diff["counts"] == {"added": 0, "removed": 0, "modified": 20}
    assert all(set(change["cells"]) == {"sentiment"} for change in diff["rows"])
    admin.goto(f"{base}/diff?from=2&to=3")
    expect(admin.locator("td.changed")).to_have_count(20)


def test_image_dataset_labelled_with_the_keyboard_only(
    server: Server, admin_api: httpx.Client, new_page: Callable[..., Page]
) -> None:
    labels = {"json": {"column": "digit", "labels": ["zero", "one", "two"]}}
    admin_api.post(f"/api/projects/{PROJECT}/datasets/digits/labeling", **labels).raise_for_status()
    page = new_page("admin", ADMIN_PASSWORD)
    page.goto(f"{server.url}/projects/{PROJECT}/datasets/digits/labeling?column=digit")
    image = page.locator("#label-item img.label-image")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('#label-item img').naturalWidth") == 32

    def row() -> int:
        return int(page.locator("#label-item .label-row").get_attribute("data-row"))

    first = row()
    settled(page)
    page.keyboard.press("s")  # skip, then back with the left arrow
    expect(page.locator("#label-item .label-row")).not_to_have_attribute("data-row", str(first))
    settled(page)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#label-item .label-row")).to_have_attribute("data-row", str(first))

    def answer(_: int, text: str) -> str:
        return str(int(re.search(r"_digit(\d)", text).group(1)) + 1)

    settled(page)
    page.keyboard.press("2")  # a wrong first answer, taken back with u
    expect(page.locator("#label-item .done")).to_have_text("1")
    settled(page)
    page.keyboard.press("u")
    expect(page.locator("#label-item .done")).to_have_text("0")
    expect(page.locator("#label-item .label-row")).to_have_attribute("data-row", str(first))
    label_with_keys(page, answer, 6)
    settled(page)
    page.keyboard.press("Control+z")  # undo the last one, and answer it again
    expect(page.locator("#label-item .done")).to_have_text("5")
    settled(page)
    page.keyboard.press(answer(row(), page.locator("#label-item .label-row").inner_text()))
    expect(page.locator("#label-item .done")).to_have_text("6")

    items = admin_api.get(
        f"/api/projects/{PROJECT}/datasets/digits/labeling/digit/items?filter=all"
    ).json()["items"]
    names = ["zero", "one", "two"]
    for item in items:
        path = next(f["value"] for f in item["fields"] if f["name"] == "path")
        assert item["mine"] == names[int(re.search(r"_digit(\d)", path).group(1))]
    assert len(items) == 6


def iris_csv(rows: range, with_species: bool) -> bytes:
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    lines = [",".join(names + (["species"] if with_species else []))]
    for i in rows:
        values = [str(v) for v in iris.data[i]]
        species = [str(iris.target_names[iris.target[i]])] if with_species else []
        lines.append(",".join(values + species))
    return ("\n".join(lines) + "\n").encode()


def test_a_served_model_suggests_labels_least_confident_first(admin_api: httpx.Client) -> None:
    base = f"/api/projects/{PROJECT}"
    upload(admin_api, "iris.csv", iris_csv(range(0, 150, 2), with_species=True))
    started = admin_api.post(f"{base}/datasets/iris/train", json={"target": "species"})
    assert started.status_code == 201, started.text
    trained = started.json()
    assert wait_run(admin_api, PROJECT, trained["run_id"])["run"]["status"] == "succeeded"

    upload(admin_api, "fresh.csv", iris_csv(range(1, 150, 5), with_species=False))
    species = ["setosa", "versicolor", "virginica"]
    made = admin_api.post(f"{base}/datasets/fresh/labeling",
                          json={"column": "species", "labels": species})  # fmt: skip
    assert made.status_code == 201, made.text
    found = admin_api.get(f"{base}/datasets/fresh/labeling/species/items?limit=50").json()
    assert found["model"] == trained["model"]
    sure = [item["suggestion"]["confidence"] for item in found["items"]]
    assert len(sure) == 30 and sure == sorted(sure)  # least confident first
    assert {item["suggestion"]["label"] for item in found["items"]} <= set(species)
    unsure = admin_api.get(f"{base}/datasets/fresh/labeling/species/items?filter=uncertain")
    assert all(i["suggestion"]["confidence"] < 0.6 for i in unsure.json()["items"])

    again = admin_api.post(f"{base}/datasets/fresh/labeling/species/retrain")
    assert again.status_code == 201, again.text
    assert again.json()["pipeline"] == trained["pipeline"]
    assert wait_run(admin_api, PROJECT, again.json()["run"])["run"]["status"] == "succeeded"
