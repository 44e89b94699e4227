"""The no-code builder, driven with the same form posts htmx sends."""

from __future__ import annotations

import re
from html import unescape as html_unescape

import pytest

from conftest import TEST_MODULES, api_token, csrf, login
from reef.errors import InvalidParameter

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 5},{i % 2}\n".encode() for i in range(40))


def project_with(client, csv: bytes, dataset: str) -> dict[str, str]:
    """Project 'b' holding one dataset, and the admin signed in; returns API headers."""
    headers = api_token(client)
    client.post("/api/projects", json={"name": "b"}, headers=headers)
    client.post(
        "/api/projects/b/datasets",
        files={"file": ("d.csv", csv)},
        data={"name": dataset},
        headers=headers,
    )
    login(client)
    return headers


@pytest.fixture
def page(app_client):
    project_with(app_client, CSV, "d")
    return app_client, app_client.get("/projects/b/builder").text


def draft_of(html: str) -> str:
    return html_unescape(re.search(r'name="draft" value="([^"]*)"', html)[1])


def act(client, html: str, **fields: str) -> str:
    """One builder change, posted as htmx posts it: the draft, the CSRF token, the fields."""
    body = {"_csrf_token": csrf(html), "draft": draft_of(html), **fields}
    resp = client.post("/projects/b/builder", data=body, headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.text
    return resp.text


def test_build_split_model_evaluate_without_yaml(page):
    client, html = page
    assert "Start by adding a step" in html
    for module in ("library/split", "library/mlp-classifier", "library/evaluate"):
        html = act(client, html, action="add", module=module)
    assert re.findall(r'data-step="([^"]+)"', html)[:3] == ["split", "mlp-classifier", "evaluate"]
    wired = dict(
        re.findall(
            r'data-input="([^"]+)">\s*<option value="">— choose —</option>'
            r"(?:.*?)<option selected>([^<]+)</option>",
            html,
            re.S,
        )
    )
    assert wired == {
        "split.data": "dataset:d",
        "mlp-classifier.train": "split.train",
        "evaluate.model": "mlp-classifier.model",
        "evaluate.test": "split.test",
    }
    assert "Ready: this pipeline can run." in html and '<svg class="dag"' in html
    html = act(client, html, **{"param:mlp-classifier.epochs": "0"})
    assert "must be &gt;= 1" in html  # validated as the user types
    html = act(client, html, **{"param:mlp-classifier.epochs": "3"})
    assert "Ready" in html
    resp = client.post(
        "/projects/b/builder",
        headers={"HX-Request": "true"},
        data={
            "_csrf_token": csrf(html),
            "action": "save",
            "name": "built",
            "draft": re.search(r'name="draft" value="([^"]*)"', html)[1].replace("&#34;", '"'),
        },
    )
    assert resp.headers["hx-redirect"] == "/projects/b/pipelines/built"
    saved = client.get("/projects/b/builder?pipeline=built").text
    assert 'value="3"' in saved and "mlp-classifier" in saved


def test_a_saved_pipeline_with_bare_module_names_opens_in_the_builder(page, app_client):
    client, _ = page
    headers = api_token(app_client)
    steps = [{"name": "split", "module": "split", "inputs": {"data": "dataset:d"}}]
    client.post("/api/projects/b/pipelines", json={"name": "bare", "steps": steps}, headers=headers)
    html = client.get("/projects/b/builder?pipeline=bare").text
    assert "library/split" in html and "Ready" in html


KIND_CSV = b"a,b,kind\n" + b"".join(f"{i},{i % 5},{'xy'[i % 2]}\n".encode() for i in range(40))


@pytest.fixture
def kinds(app_client):
    """A project whose label column is called 'kind' (no column is called 'label')."""
    headers = project_with(app_client, KIND_CSV, "k")
    return app_client, app_client.get("/projects/b/builder").text, headers


def selected(html: str, field: str) -> str:
    """The option a select shows as chosen."""
    select = re.search(rf'name="{re.escape(field)}"[^>]*>(.*?)</select>', html, re.S)[1]
    return re.search(r"<option selected>([^<]*)</option>", select)[1]


def saved_spec(client, headers, name: str) -> dict:
    resp = client.get(f"/api/projects/b/pipelines/{name}", headers=headers)
    assert resp.status_code == 200, resp.text
    return {s["name"]: s for s in resp.json()["spec"]["steps"]}


def save(client, html: str, name: str):
    body = {"_csrf_token": csrf(html), "draft": draft_of(html), "action": "save", "name": name}
    return client.post("/projects/b/builder", data=body, headers={"HX-Request": "true"})


def test_no_is_kept_as_no_and_saved_as_false(kinds):
    """The bug: 'no' came back as 'yes' (the string "false" is truthy in the template), so
    the next change sent 'yes' and the saved pipeline ran with stratify=True."""
    client, html, headers = kinds
    html = act(client, html, action="add", module="library/split")
    html = act(client, html, **{"param:split.stratify": "false", "param:split.label": "kind"})
    assert '<option value="false" selected>no</option>' in html
    html = act(client, html, **{"param:split.test_size": "0.3"})  # another change: still no
    assert '<option value="false" selected>no</option>' in html
    assert save(client, html, "nostrat").headers["hx-redirect"].endswith("/nostrat")
    assert saved_spec(client, headers, "nostrat")["split"]["params"]["stratify"] is False
    reopened = client.get("/projects/b/builder?pipeline=nostrat").text
    assert '<option value="false" selected>no</option>' in reopened


def test_label_is_chosen_once_and_a_model_step_registers(kinds):
    client, html, headers = kinds
    html = act(client, html, action="add", module="library/split")
    html = act(client, html, **{"param:split.label": "kind"})
    html = act(client, html, action="add", module="library/picker")
    assert 'name="register:picker" value="picker"' in html  # the step's name until...
    html = act(client, html, name="churn")  # ...the pipeline has one
    assert 'name="register:picker" value="churn"' in html
    # the label chosen in split arrives in picker's target, and follows a later change
    assert selected(html, "param:picker.target") == "kind"
    html = act(client, html, **{"param:split.label": "b"})
    assert selected(html, "param:picker.target") == "b"
    html = act(client, html, **{"param:split.label": "kind", "param:picker.target": "kind"})
    # columns of the upstream output (split passes its dataset's columns through)
    assert 'name="cols:picker.exclude:a"' in html and 'name="cols:picker.exclude:kind"' in html
    html = act(client, html, **{"cols:picker.exclude": "", "cols:picker.exclude:a": "on"})
    assert "Ready: this pipeline can run." in html
    assert save(client, html, "churn").status_code == 200
    picker = saved_spec(client, headers, "churn")["picker"]
    assert picker["register"] == "churn"
    assert picker["params"] == {"target": "kind", "exclude": ["a"]}


def test_a_column_that_does_not_reach_the_step_is_refused_at_save(kinds):
    client, html, headers = kinds
    html = act(client, html, action="add", module="library/split")
    # nothing touched yet: what is missing is a to-do, not an error, and never "Ready"
    assert "Not ready yet" in html and 'class="error"' not in html and "Ready:" not in html
    assert "no column &#39;label&#39;" in html and "— choose a column —" in html
    html = act(client, html, **{"param:split.label": "kind"})
    html = act(client, html, action="add", module="library/picker")
    html = act(client, html, **{"param:picker.target": "nope", "param:split.label": "kind"})
    # the planner follows split's declared columns, so its words say which output lacks it
    assert 'class="error"' in html and "no column &#39;nope&#39; in the output split.train" in html
    assert "Ready:" not in html
    resp = save(client, html, "bad")
    assert "no column &#39;nope&#39;" in resp.text and "hx-redirect" not in resp.headers
    assert client.get("/api/projects/b/pipelines/bad", headers=headers).status_code == 404


def test_a_columns_parameter_takes_a_list_or_comma_separated_names():
    from reef.manifest import parse_manifest

    toml = (TEST_MODULES / "picker" / "reef.toml").read_text()
    manifest = parse_manifest(toml)
    assert manifest.resolve_params({})["exclude"] == []
    assert manifest.resolve_params({"exclude": "a, b"})["exclude"] == ["a", "b"]
    with pytest.raises(InvalidParameter):
        manifest.resolve_params({"exclude": [1]})
