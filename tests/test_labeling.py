"""Labeling over the API, in-process: label sets, drafts, assignments, agreement, review,
publishing as one version, and the refusals (nothing published on bad input)."""

from __future__ import annotations

import pytest

from conftest import api_token, csrf, login

BASE = "/api/projects/p/datasets"
LABELING = f"{BASE}/reviews/labeling"
TEXTS = [f"review number {i}: {'great' if i % 2 else 'awful'} product" for i in range(20)]
CSV = ("id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(TEXTS))).encode()
PASSWORD = "annotator-password-1"


@pytest.fixture
def team(app_client):
    """Project p with dataset `reviews` and two annotators (reporters) ann and bob."""
    admin = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p"}, headers=admin).raise_for_status()
    resp = app_client.post(BASE, files={"file": ("reviews.csv", CSV)}, headers=admin)
    assert resp.status_code == 201, resp.text
    people = {"admin": admin}
    for name in ("ann", "bob"):
        user = {"name": name, "password": PASSWORD}
        app_client.post("/api/users", json=user, headers=admin).raise_for_status()
        member = {"user": name, "role": "reporter"}
        app_client.post("/api/projects/p/members", json=member, headers=admin).raise_for_status()
        people[name] = api_token(app_client, name, PASSWORD)
    return app_client, people


def call(client, who, method, path, status, **kwargs):
    resp = client.request(method, path, headers=who, **kwargs)
    assert resp.status_code == status, resp.text
    return resp.json()


def versions(client, who) -> list[dict]:
    return call(client, who, "GET", f"{BASE}/reviews/versions", 200)


def test_two_annotators_review_and_one_published_version(team):
    client, people = team
    admin, ann, bob = people["admin"], people["ann"], people["bob"]
    made = call(client, admin, "POST", LABELING, 201,
                json={"column": "sentiment", "labels": ["pos", "neg"]})  # fmt: skip
    assert made["version"] == 2  # the empty label column, added as one version
    call(client, admin, "POST", f"{LABELING}/sentiment/assignments", 201,
         json={"annotators": ["ann", "bob"], "per_row": 2})  # fmt: skip
    items = call(client, ann, "GET", f"{LABELING}/sentiment/items?limit=200", 200)
    rows = [i["row"] for i in items["items"]]
    assert len(rows) == 20 and items["progress"] == {"done": 0, "total": 20, "percent": 0}
    truth = {r: "pos" if r % 2 else "neg" for r in rows}
    for r in rows:
        call(client, ann, "POST", f"{LABELING}/sentiment/annotations", 201,
             json={"row": r, "label": truth[r]})  # fmt: skip
        other = ("neg" if truth[r] == "pos" else "pos") if r < 5 else truth[r]
        call(client, bob, "POST", f"{LABELING}/sentiment/annotations", 201,
             json={"row": r, "label": other})  # fmt: skip
    agreement = call(client, ann, "GET", f"{LABELING}/sentiment/agreement", 200)
    assert (agreement["rows"], agreement["agreeing"], agreement["disputed"]) == (20, 15, 5)
    assert agreement["pairs"][0]["same"] == 15 and 0 < agreement["pairs"][0]["kappa"] < 1

    call(client, admin, "PUT", "/api/projects/p/labeling-settings", 200,
         json={"review_required": True})  # fmt: skip
    refused = call(client, admin, "POST", f"{LABELING}/sentiment/publish", 409, json={})
    assert "5 rows have unresolved disagreements" in refused["detail"]
    assert len(versions(client, admin)) == 2  # nothing published

    review = call(client, admin, "GET", f"{LABELING}/sentiment/review", 200)
    assert sorted(r["row"] for r in review["open"]) == [0, 1, 2, 3, 4]
    for r in range(5):
        call(
            client,
            bob,
            "POST",
            f"{LABELING}/sentiment/resolve",
            403,
            json={"row": r, "label": truth[r]},
        )  # fmt: skip  (reviewing needs maintainer)
        decided = call(client, admin, "POST", f"{LABELING}/sentiment/resolve", 201,
                       json={"row": r, "label": truth[r]})  # fmt: skip
        assert decided["reviewer"] == "admin"
    published = call(client, admin, "POST", f"{LABELING}/sentiment/publish", 201,
                     json={"message": "first labels"})  # fmt: skip
    assert (published["version"], published["labels"]) == (3, 20)
    assert [v["version"] for v in versions(client, admin)] == [3, 2, 1]
    data = call(client, admin, "GET", f"{BASE}/reviews/versions/3/rows?limit=100", 200)
    got = {row[data["columns"].index("id")]: row[data["columns"].index("sentiment")]
           for row in data["rows"]}  # fmt: skip
    assert got == {r: truth[r] for r in rows}  # row ids are the ids here (0..19)
    diff = call(client, admin, "GET", f"{BASE}/reviews/diff?from=2&to=3", 200)
    assert diff["counts"] == {"added": 0, "removed": 0, "modified": 20}
    changed = {c["row_id"]: c["cells"] for c in diff["rows"]}
    assert changed == {r: {"sentiment": {"old": None, "new": truth[r]}} for r in rows}
    call(client, admin, "POST", f"{LABELING}/sentiment/publish", 400, json={})  # nothing new


def test_refusals_publish_nothing(team):
    client, people = team
    admin, ann = people["admin"], people["ann"]
    sentiment = {"column": "sentiment", "labels": ["pos", "neg"]}
    call(client, admin, "POST", LABELING, 201, json=sentiment)
    call(client, admin, "POST", LABELING, 400, json={"column": "x", "labels": ["only one"]})
    call(client, admin, "POST", LABELING, 400, json={"column": "x", "labels": "pos"})
    call(
        client,
        admin,
        "POST",
        f"{LABELING}/sentiment/assignments",
        201,
        json={"annotators": ["ann"], "share": 0.25},
    )  # fmt: skip  (rows 0-4)
    bad = call(client, ann, "POST", f"{LABELING}/sentiment/annotations", 400,
               json={"row": 1, "label": "meh"})  # fmt: skip
    assert "'meh' is not in the label set" in bad["detail"]
    assert call(client, admin, "GET", f"{LABELING}/sentiment/agreement", 200)["labelled"] == 0
    theirs = call(client, ann, "POST", f"{LABELING}/sentiment/annotations", 403,
                  json={"row": 7, "label": "pos"})  # fmt: skip
    assert "row 7 is not assigned to you" in theirs["detail"]
    call(client, ann, "POST", f"{LABELING}/sentiment/annotations", 400,
         json={"row": 999, "label": "pos"})  # fmt: skip
    call(client, ann, "POST", f"{LABELING}/sentiment/annotations", 400, json={"row": "x"})
    call(client, admin, "POST", f"{LABELING}/sentiment/assignments", 400,
         json={"annotators": ["nobody"]})  # fmt: skip
    call(client, admin, "POST", f"{LABELING}/sentiment/assignments", 400,
         json={"annotators": ["ann"], "per_row": 2})  # fmt: skip
    call(client, ann, "POST", f"{LABELING}/sentiment/assignments", 403,
         json={"annotators": ["ann"]})  # fmt: skip
    call(client, admin, "POST", f"{LABELING}/sentiment/publish", 400, json={})  # no drafts
    assert len(versions(client, admin)) == 2
    call(client, admin, "GET", f"{LABELING}/nope/items", 404)
    drop = {"op": "drop_column", "column": "sentiment"}
    call(client, admin, "POST", f"{BASE}/reviews/versions", 201, json=drop)
    gone = call(client, admin, "GET", f"{LABELING}/sentiment/items", 404)
    assert "no longer in dataset" in gone["detail"]


def test_undo_filters_and_solo_labeling(team):
    client, people = team
    admin = people["admin"]
    call(client, admin, "POST", LABELING, 201, json={"column": "id", "labels": ["a", "b"]})
    ann = people["ann"]  # no assignments: a reporter may not label, a developer may
    call(client, ann, "POST", f"{LABELING}/id/annotations", 403, json={"row": 0, "label": "a"})
    items = call(client, admin, "GET", f"{LABELING}/id/items?filter=all&limit=3", 200)
    assert [i["row"] for i in items["items"]] == [0, 1, 2] and items["items"][0]["current"] == 0
    # an existing column with values: nothing is "unlabelled"
    assert call(client, admin, "GET", f"{LABELING}/id/items", 200)["items"] == []
    call(client, admin, "POST", f"{LABELING}/id/annotations", 201, json={"row": 3, "label": "b"})
    assert call(client, admin, "POST", f"{LABELING}/id/undo", 200, json={}) == {
        "row": 3, "label": None, "author": "admin"}  # fmt: skip
    call(client, admin, "POST", f"{LABELING}/id/undo", 400, json={})
    call(client, admin, "GET", f"{LABELING}/id/items?filter=bogus", 400)
    schema = client.get("/schema/openapi.json").json()
    path = "/api/projects/{project}/datasets/{dataset}/labeling/{column}/publish"
    assert "PublishIn" in str(schema["paths"][path])


def test_pages_refuse_a_label_outside_the_set_on_the_item(team):
    client, people = team
    call(client, people["admin"], "POST", LABELING, 201,
         json={"column": "sentiment", "labels": ["pos", "neg"]})  # fmt: skip
    login(client)
    page = client.get("/projects/p/datasets/reviews/labeling?column=sentiment")
    assert page.status_code == 200 and 'data-key="2"' in page.text
    token = csrf(page.text)
    form = {"column": "sentiment", "filter": "todo", "row": "0", "_csrf_token": token}
    url = "/projects/p/datasets/reviews/labeling/label"
    bad = client.post(url, data={**form, "label": "meh"}, headers={"hx-request": "true"})
    assert bad.status_code == 400 and "is not in the label set" in bad.text
    assert 'data-row="0"' in bad.text  # the same item, shown again with the reason
    good = client.post(url, data={**form, "label": "neg"}, headers={"hx-request": "true"})
    assert good.status_code == 200 and 'data-row="1"' in good.text  # on to the next
    summary = client.get("/projects/p/datasets/reviews/labeling/summary").text
    assert "1 row has draft labels" in summary
