"""Finding your way and plain words: the project's path with its next step, runs tables and
buttons that keep themselves current (an htmx request answers only its fragment), gates and
activity as sentences, metrics explained on hover."""

from __future__ import annotations

import pytest
from test_models import register

from conftest import api_token, login
from reef.server.wording import gate_sentence

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 5},{i % 2}\n".encode() for i in range(20))


@pytest.fixture
def lab(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "lab"}, headers=headers)
    login(app_client)
    return headers


def fragment(client, url: str, target: str):
    """A page asked for by htmx to swap the element `target`."""
    resp = client.get(url, headers={"HX-Request": "true", "HX-Target": target})
    assert resp.status_code == 200, resp.text
    assert "<html" not in resp.text and "<header" not in resp.text  # the fragment only
    return resp.text.strip()


def test_the_path_shows_the_next_sensible_step(app_client, lab, tmp_path):
    page = app_client.get("/projects/lab").text
    assert 'href="/projects/lab/import-dataset">Upload your data</a>' in page
    assert '<li class="next" title="the tables you upload and fix">' in page
    app_client.post(
        "/api/projects/lab/datasets",
        files={"file": ("d.csv", CSV)},
        data={"name": "d"},
        headers=lab,
    )
    page = app_client.get("/projects/lab").text
    assert 'href="/projects/lab/datasets/d">Train a model</a>' in page
    register(app_client.app.state.hub, tmp_path)
    page = app_client.get("/projects/lab").text
    assert 'href="/projects/lab/models/m">Try model m</a>' in page


def test_runs_tables_buttons_and_record_update_as_fragments(app_client, lab):
    run_id = app_client.post("/api/projects/lab/runs", json={"name": "manual"}, headers=lab).json()[
        "id"
    ]
    page = app_client.get("/projects/lab").text
    assert 'href="/projects/lab/runs">All runs' in page  # the runs table is linked
    table = fragment(app_client, "/projects/lab", "runs-live")
    assert table.startswith('<div id="runs-live"') and 'hx-trigger="every 2s"' in table
    assert f'href="/projects/lab/runs/{run_id}"' in table
    actions = fragment(app_client, f"/projects/lab/runs/{run_id}", "run-actions")
    assert actions.startswith('<div class="actions" id="run-actions"') and ">Cancel<" in actions
    cell = app_client.get(f"/projects/lab/runs/{run_id}/status").text
    assert "running" in cell and "hx-trigger" in cell
    record = fragment(app_client, f"/projects/lab/runs/{run_id}", "record")
    assert record.startswith('<section class="card" id="record"') and "<details>" in record
    finished = app_client.post(
        f"/api/projects/lab/runs/{run_id}/finish", json={"status": "succeeded"}, headers=lab
    )
    assert finished.status_code == 200, finished.text
    actions = fragment(app_client, f"/projects/lab/runs/{run_id}", "run-actions")
    assert ">Cancel<" not in actions and "hx-trigger" not in actions  # stops asking
    assert "hx-trigger" not in app_client.get(f"/projects/lab/runs/{run_id}/status").text
    assert 'hx-trigger="every 10s"' in fragment(app_client, "/projects/lab", "runs-live")
    assert fragment(app_client, "/queue", "queue").startswith('<div id="queue"')


def test_gates_and_activity_read_as_sentences(app_client, lab, tmp_path):
    register(app_client.app.state.hub, tmp_path)
    gates = {"checks": [{"type": "metric", "metric": "accuracy", "min": 0.95}, {"type": "parity"}]}
    resp = app_client.post("/api/projects/lab/models/m/gates", json=gates, headers=lab)
    assert resp.status_code == 200, resp.text
    page = app_client.get("/projects/lab/models/m").text
    assert "accuracy must be at least 0.95" in page
    assert "the exported model must answer as the trained one does" in page
    assert 'title="Share of test rows whose predicted class' in page  # metrics explained on hover
    run_id = app_client.post("/api/projects/lab/runs", json={"name": "x"}, headers=lab).json()["id"]
    app_client.post(f"/api/projects/lab/runs/{run_id}/comments", json={"text": "fine"}, headers=lab)
    page = app_client.get("/projects/lab").text
    assert f'admin commented on <a href="/projects/lab/runs/{run_id}">run {run_id}</a>' in page
    assert 'admin registered <a href="/projects/lab/models/m">model m version 1</a>' in page
    assert "run.comment" not in page


@pytest.mark.parametrize(
    ("check", "sentence"),
    [
        ({"type": "metric", "metric": "rmse", "max": 3}, "rmse must be at most 3"),
        ({"type": "metric", "metric": "r2", "min": 0.5, "max": 1}, "r2 must be between 0.5 and 1"),
        ({"type": "latency", "max_ms": 5, "batch": 1}, "answering one row must take at most 5 ms"),
        (
            {"type": "better_than", "dataset": "d@1", "metric": "accuracy", "min_delta": 0.01},
            "accuracy on dataset d@1 must beat the production version by at least 0.01",
        ),
    ],
)
def test_gate_sentences(check, sentence):
    assert gate_sentence(check) == sentence
