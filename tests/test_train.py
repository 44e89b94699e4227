"""'Train a model' over HTTP: the detection the form shows, and the bad input it refuses
before anything is saved or run (issue 12's acceptance: single value, unique values offered
as groups, an empty sheet). The whole path, with training, is walked in a browser in
test_expert_path.py."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from expert_data import cancer_columns, write_xlsx

from conftest import ADMIN_PASSWORD, csrf, start_server

PROJECT = "clinic"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("train")
    server = start_server(root / "data")
    client = httpx.Client(base_url=server.url, timeout=120)
    token = client.post("/api/tokens", auth=("admin", ADMIN_PASSWORD)).json()["token"]
    client.headers["Authorization"] = f"Bearer {token}"
    client.post("/api/projects", json={"name": PROJECT}).raise_for_status()
    header, rows = cancer_columns()
    header = ["patient", "site", *header]
    rows = [[f"p{i:04d}", "north", *r] for i, r in enumerate(rows[:120])]
    upload(client, "patients", write_xlsx(root / "patients.xlsx", header, rows))
    try:
        yield client
    finally:
        client.close()
        server.stop()


def upload(client: httpx.Client, name: str, path: Path) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes())}
    return client.post(f"/api/projects/{PROJECT}/datasets", data={"name": name}, files=files)


def stored(client: httpx.Client) -> tuple:
    """What a refused request must leave as it was: pipelines, runs, models, datasets."""
    base = f"/api/projects/{PROJECT}"
    paths = ("/pipelines", "/runs", "/models", "/datasets")
    return tuple(client.get(base + p).json() for p in paths)


def test_detects_the_task_in_plain_words(api: httpx.Client) -> None:
    url = f"/api/projects/{PROJECT}/datasets/patients/train"
    got = api.get(url, params={"target": "diagnosis"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["task"] == "classification" and body["plain"] == "sort rows into 2 groups"
    assert "patient" in body["left_out"] and "site" in body["left_out"]  # id and one value
    roles = {c["name"]: c for c in body["columns"]}
    assert roles["patient"]["unused"] and "identifier" in roles["patient"]["role"]
    number = api.get(
        f"/api/projects/{PROJECT}/datasets/patients/train", params={"target": "mean radius"}
    ).json()
    assert number["plain"] == "predict a number"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"target": "site"}, "single value 'north' on every row"),
        ({"target": "patient", "task": "classification"}, "different value on each of its 120"),
        ({"target": "mean radius", "task": "classification"}, "looks like a number to predict"),
        ({"target": "diagnosis", "task": "regression"}, "not numbers"),
        ({"target": "nope"}, "there is no column 'nope'"),
    ],
)
def test_a_misfit_is_refused_before_anything_is_saved(
    api: httpx.Client, body: dict, message: str
) -> None:
    before = stored(api)
    got = api.post(f"/api/projects/{PROJECT}/datasets/patients/train", json=body)
    assert got.status_code == 400, got.text
    assert message in got.json()["detail"]
    assert stored(api) == before


def test_an_empty_sheet_is_refused_with_a_clear_message(api: httpx.Client, tmp_path: Path) -> None:
    before = stored(api)
    header, _ = cancer_columns()
    got = upload(api, "empty", write_xlsx(tmp_path / "empty.xlsx", header, []))
    if got.status_code < 400:  # imported as a dataset with no rows: training refuses
        trained = api.post(
            f"/api/projects/{PROJECT}/datasets/empty/train", json={"target": "diagnosis"}
        )
        assert trained.status_code == 400
        assert "no rows" in trained.json()["detail"]
        assert stored(api)[:3] == before[:3]
    else:
        assert got.status_code == 400 and "empty" in got.json()["detail"]
        assert stored(api) == before
    blank = io.BytesIO()
    import openpyxl

    openpyxl.Workbook().save(blank)  # not even a header row
    files = {"file": ("blank.xlsx", blank.getvalue())}
    got = api.post(f"/api/projects/{PROJECT}/datasets", data={"name": "blank"}, files=files)
    assert got.status_code == 400 and "empty" in got.json()["detail"]


def test_the_form_follows_the_target_and_explains_unused_columns(api: httpx.Client) -> None:
    web = httpx.Client(base_url=str(api.base_url), timeout=60)
    token = csrf(web.get("/login").text)
    web.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                             "_csrf_token": token})  # fmt: skip
    page = web.get(f"/projects/{PROJECT}/datasets/patients")
    assert 'hx-get="/projects/clinic/datasets/patients/train"' in page.text
    form = web.get(f"/projects/{PROJECT}/datasets/patients/train").text
    assert "The model will sort rows into 2 groups" in form  # the last column, preselected
    assert 'value="patient" disabled' in form and "an identifier" in form
    refused = web.get(
        f"/projects/{PROJECT}/datasets/patients/train",
        params={"_form": "1", "target": "site", "use": ["mean radius"]},
    ).text
    assert "single value" in refused and '<button type="submit" disabled>' in refused
    left_out = web.get(
        f"/projects/{PROJECT}/datasets/patients/train",
        params={"_form": "1", "target": "diagnosis", "use": ["mean radius", "mean texture"]},
    ).text
    assert "from 2 columns" in left_out
    web.close()
