"""Pipelines are validated before anything runs: every bad spec gets a 400 that says why."""

from __future__ import annotations

import pytest

from conftest import api_token, csrf, login

CSV = b"x1,x2,label\n" + b"".join(f"{i},{i * 2},{i % 2}\n".encode() for i in range(40))


@pytest.fixture
def api(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p"}, headers=headers)
    resp = app_client.post(
        "/api/projects/p/datasets",
        files={"file": ("d.csv", CSV)},
        data={"name": "d"},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    return app_client, headers


def good_steps() -> list[dict]:
    return [
        {"name": "split", "module": "split", "inputs": {"data": "dataset:d"}},
        {
            "name": "train",
            "module": "mlp-classifier",
            "inputs": {"train": "split.train"},
            "params": {"epochs": 2},
        },
        {
            "name": "evaluate",
            "module": "evaluate",
            "inputs": {"model": "train.model", "test": "split.test"},
        },
    ]


def refused(api, steps, *fragments: str) -> None:
    client, headers = api
    resp = client.post(
        "/api/projects/p/pipelines", json={"name": "bad", "steps": steps}, headers=headers
    )
    assert resp.status_code == 400, resp.text
    for fragment in fragments:
        assert fragment in resp.json()["detail"]
    assert client.get("/api/projects/p/pipelines", headers=headers).json() == []
    assert client.get("/api/projects/p/runs", headers=headers).json() == []


def test_a_good_pipeline_is_saved_pinned_to_library_modules(api):
    client, headers = api
    resp = client.post(
        "/api/projects/p/pipelines", json={"name": "ok", "steps": good_steps()}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    saved = client.get("/api/projects/p/pipelines/ok", headers=headers).json()
    assert [s["name"] for s in saved["spec"]["steps"]] == ["split", "train", "evaluate"]


def test_unknown_parameter(api):
    steps = good_steps()
    steps[1]["params"] = {"epochz": 3}
    refused(api, steps, "step 'train'", "unknown parameter 'epochz'", "epochs")


def test_wrongly_typed_parameter(api):
    steps = good_steps()
    steps[1]["params"] = {"epochs": "many"}
    refused(api, steps, "'epochs' must be an int", "many")


def test_parameter_out_of_range(api):
    steps = good_steps()
    steps[0]["params"] = {"test_size": 1.5}
    refused(api, steps, "test_size", "<= 0.9")


def test_cycle(api):
    steps = good_steps()
    steps[0]["inputs"] = {"data": "evaluate.report"}
    steps[2]["inputs"] = {"model": "train.model", "test": "split.test"}
    refused(api, steps, "cycle")


def test_output_wired_to_input_of_the_wrong_kind(api):
    steps = good_steps()
    steps[2]["inputs"] = {"model": "split.test", "test": "split.test"}
    refused(api, steps, "expects a model", "split.test is a dataset")


def test_unknown_module_and_unknown_commit(api):
    steps = good_steps()
    steps[1]["module"] = "no-such-module"
    refused(api, steps, "no module 'no-such-module'")
    steps = good_steps()
    steps[1]["module"] = "mlp-classifier@deadbeef00"
    refused(api, steps, "step 'train'", "deadbeef00")


def test_unconnected_input_and_unknown_dataset(api):
    steps = good_steps()
    steps[2]["inputs"] = {"model": "train.model"}
    refused(api, steps, "input(s) test not connected")
    steps = good_steps()
    steps[0]["inputs"] = {"data": "dataset:nope"}
    refused(api, steps, "nope")


def test_run_with_a_wrongly_typed_override_is_refused(api):
    client, headers = api
    client.post(
        "/api/projects/p/pipelines", json={"name": "ok", "steps": good_steps()}, headers=headers
    )
    resp = client.post(
        "/api/projects/p/pipelines/ok/runs",
        json={"params": {"train": {"hidden": "wide"}}},
        headers=headers,
    )
    assert resp.status_code == 400
    assert "'hidden' must be an int" in resp.json()["detail"]
    resp = client.post(
        "/api/projects/p/pipelines/ok/runs", json={"params": {"nostep": {"x": 1}}}, headers=headers
    )
    assert resp.status_code == 400 and "nostep" in resp.json()["detail"]
    assert client.get("/api/projects/p/runs", headers=headers).json() == []


def test_malformed_csv_is_refused_and_nothing_changes(api):
    client, headers = api
    resp = client.post(
        "/api/projects/p/datasets/d/versions",
        files={"file": ("d.csv", b"x1,x2,label\n1,2,0\n3,4\n5,6,1,7\n")},
        headers=headers,
    )
    assert resp.status_code == 400
    assert "line" in resp.json()["detail"]
    versions = client.get("/api/projects/p/datasets/d/versions", headers=headers).json()
    assert [v["version"] for v in versions] == [1]
    rows = client.get("/api/projects/p/datasets/d/versions/1/rows?limit=5", headers=headers)
    assert rows.json()["total"] == 40


def test_upload_versions_and_paged_preview(api):
    client, headers = api
    more = CSV + b"100,200,1\n"
    resp = client.post(
        "/api/projects/p/datasets/d/versions",
        files={"file": ("d.csv", more)},
        data={"message": "one more row"},
        headers=headers,
    )
    assert resp.status_code == 201 and resp.json()["version"] == 2
    info = client.get("/api/projects/p/datasets/d", headers=headers).json()
    assert [(v["version"], v["num_rows"]) for v in info["versions"]] == [(2, 41), (1, 40)]
    assert info["versions"][0]["message"] == "one more row"
    page = client.get(
        "/api/projects/p/datasets/d/versions/2/rows?offset=39&limit=10", headers=headers
    ).json()
    assert page["columns"] == ["x1", "x2", "label"]
    assert page["rows"] == [[39, 78, 1], [100, 200, 1]]
    old = client.get("/api/projects/p/datasets/d/versions/1/rows?offset=39", headers=headers)
    assert old.json()["rows"] == [[39, 78, 1]]
    assert client.get("/api/projects/p/datasets/d/versions/9", headers=headers).status_code == 404


def test_a_column_parameter_must_name_a_column_of_its_dataset(api):
    steps = good_steps()
    steps[0]["params"] = {"label": "lable"}
    refused(api, steps, "step 'split'", "no column 'lable' in d@1", "columns: x1, x2, label")


YAML = """name: from-yaml
steps:
  - name: split
    module: split
    inputs: {data: "dataset:d"}
    params: {test_size: 0.3}
"""


def test_a_pipeline_saved_as_yaml_reads_back_as_yaml(api):
    client, headers = api
    resp = client.post(
        "/api/projects/p/pipelines",
        content=YAML,
        headers={**headers, "Content-Type": "application/yaml"},
    )
    assert resp.status_code == 201, resp.text
    back = client.get("/api/projects/p/pipelines/from-yaml?format=yaml", headers=headers)
    assert back.headers["content-type"].startswith("application/yaml")
    assert "test_size: 0.3" in back.text and back.text.startswith("name: from-yaml")
    bad = client.post(
        "/api/projects/p/pipelines",
        content="steps: [unclosed",
        headers={**headers, "Content-Type": "application/yaml"},
    )
    assert bad.status_code == 400 and "not valid YAML" in bad.json()["detail"]


def test_the_yaml_editor_saves_or_shows_the_error(api):
    client, _ = api
    login(client)
    page = client.get("/projects/p/pipelines/new")
    assert page.status_code == 200 and "library/split" in page.text
    resp = client.post(
        "/projects/p/pipelines/yaml",
        data={"yaml": YAML.replace("0.3", "7"), "_csrf_token": csrf(page.text)},
    )
    assert resp.status_code == 400 and "test_size" in resp.text and "&lt;= 0.9" in resp.text
    resp = client.post(
        "/projects/p/pipelines/yaml", data={"yaml": YAML, "_csrf_token": csrf(page.text)}
    )
    assert resp.status_code == 200 and "Pipeline from-yaml" in resp.text
    assert '<svg class="dag"' in resp.text


def test_a_column_missing_upstream_is_refused_when_saved(api):
    """split declares that its outputs keep its input's columns, so a step reading
    split.test is checked against d's columns before anything runs."""
    steps = good_steps()
    steps[2]["params"] = {"label": "lable"}
    refused(api, steps, "step 'evaluate'", "no column 'lable' in the output split.test", "x1, x2")
    steps = good_steps()
    steps[1]["params"] = {"label": "target"}
    refused(api, steps, "step 'train'", "no column 'target' in the output split.train")


def test_a_column_of_the_wrong_type_upstream_is_refused_when_saved(api):
    """binner adds x1_bin, a string column: a numeric column parameter downstream that names
    it is refused; one naming a column passed through is accepted."""
    client, headers = api
    first = {"name": "bin", "module": "binner", "inputs": {"data": "dataset:d"}}
    second = {"name": "again", "module": "binner", "inputs": {"data": "bin.out"}}
    refused(
        api,
        [first, {**second, "params": {"column": "x1_bin"}}],
        "step 'again': parameter 'column': column 'x1_bin' is string, not numeric",
    )
    ok = [first, {**second, "params": {"column": "x2"}}]
    resp = client.post(
        "/api/projects/p/pipelines", json={"name": "ok", "steps": ok}, headers=headers
    )
    assert resp.status_code == 201, resp.text
