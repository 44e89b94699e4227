"""Imports in the background (`?wait=false`, the import page) with their progress, and
`reef dataset import` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import api_token, csrf, login, patience
from reef.store.datasets import DatasetStore

BASE = "/api/projects/p/datasets"
CSV = b"id,x,label\n" + b"".join(f"{i},{i * 0.5},{'ab'[i % 2]}\n".encode() for i in range(40))


def parquet_bytes(tmp_path: Path, rows: int) -> bytes:
    path = tmp_path / "big.parquet"
    table = pa.table({"id": np.arange(rows), "x": np.random.default_rng(0).random(rows)})
    pq.write_table(table, path, row_group_size=50_000)
    return path.read_bytes()


def wait_job(client, headers, job: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        resp = client.get(f"/api/projects/p/imports/{job['id']}", headers=headers)
        assert resp.status_code == 200, resp.text
        job = resp.json()
    return job


@pytest.fixture
def api(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "p"}, headers=headers)
    return app_client, headers


def test_import_reports_rows_read_as_it_goes(tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": np.arange(200_000)}), src, row_group_size=20_000)
    seen: list[int] = []
    info = DatasetStore(tmp_path / "ds").import_file("p", "t", src, progress=seen.append)
    assert info.num_rows == 200_000
    assert seen[0] == 0 and seen[-1] == 200_000 and seen == sorted(seen) and len(seen) > 2


def test_background_import_has_progress_then_the_version(api, tmp_path):
    client, headers = api
    content = parquet_bytes(tmp_path, 300_000)
    resp = client.post(
        BASE + "?wait=false",
        files={"file": ("big.parquet", content)},
        data={"name": "big", "message": "in the background"},
        headers=headers,
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["total_rows"] == 300_000 and not job["estimated"]
    assert job["dataset"] == "big" and job["bytes_total"] == len(content)
    job = wait_job(client, headers, job)
    assert job["status"] == "done", job
    assert job["rows_done"] == 300_000 and job["fraction"] == 1.0
    assert job["result"]["version"] == 1 and job["result"]["message"] == "in the background"
    listed = client.get(f"{BASE}/big/versions", headers=headers).json()
    assert [v["version"] for v in listed] == [1]


def test_background_new_version_of_a_csv_estimates_its_rows(api):
    client, headers = api
    client.post(BASE, files={"file": ("d.csv", CSV)}, data={"name": "d"}, headers=headers)
    changed = CSV.replace(b"\n3,1.5,b\n", b"\n3,7.5,b\n")  # one cell, so a new version
    resp = client.post(
        f"{BASE}/d/versions?wait=false", files={"file": ("d.csv", changed)}, headers=headers
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["estimated"] and resp.json()["total_rows"] == 40
    job = wait_job(client, headers, resp.json())
    assert job["status"] == "done" and job["result"]["version"] == 2


def test_a_failed_background_import_says_why_and_makes_no_version(api):
    client, headers = api
    bad = b"id,x\n1,2\n3\n"  # a ragged row
    resp = client.post(
        BASE + "?wait=false", files={"file": ("bad.csv", bad)}, data={"name": "bad"},
        headers=headers,
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    job = wait_job(client, headers, resp.json())
    assert job["status"] == "failed" and "line 3 has 1 fields" in job["error"], job
    assert client.get(f"{BASE}/bad", headers=headers).status_code == 404
    missing = client.get("/api/projects/p/imports/999", headers=headers)
    assert missing.status_code == 404 and "no import 999" in missing.json()["detail"]


def test_the_import_page_polls_the_job_then_goes_to_the_dataset(api):
    client = api[0]
    login(client)
    page = client.get("/projects/p/import-dataset")
    token = {"x-csrftoken": csrf(page.text), "hx-request": "true"}
    resp = client.post(
        "/projects/p/datasets", files={"file": ("d.csv", CSV)}, data={"name": "d"},
        headers=token,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert 'hx-trigger="every 500ms"' in resp.text and "Importing d.csv" in resp.text
    job_url = resp.text.split('hx-get="')[1].split('"')[0]
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline:
        poll = client.get(job_url, headers=token)
        assert poll.status_code == 200, poll.text
        if poll.headers.get("hx-redirect"):
            break
        time.sleep(0.05)
    assert poll.headers["hx-redirect"] == "/projects/p/datasets/d"


def run_cli(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reef.cli", "dataset", "import", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_cli_import_streams_a_file_and_prints_the_version(shared_server, tmp_path):
    token = shared_server.token()
    with shared_server.client(token) as client:
        client.post("/api/projects", json={"name": "p"}).raise_for_status()
    src = tmp_path / "big.parquet"
    src.write_bytes(parquet_bytes(tmp_path, 200_000))
    done = run_cli(
        shared_server, str(src), "--project", "p", "--name", "big", "--message", "from the CLI",
        "--server", shared_server.url, "--token", token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "p/big v1: 200,000 rows, 2 columns"
    assert "200,000 rows of 200,000" in done.stderr
    csv = tmp_path / "more.csv"
    csv.write_text("id;x\n7;0.5\n")
    env = {"REEF_URL": shared_server.url, "REEF_TOKEN": token}
    done = run_cli(
        shared_server, str(csv), "--project", "p", "--name", "big", "--append", "--delimiter", ";",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "p/big v2: 200,001 rows, 2 columns"
    with shared_server.client(token) as client:
        version = client.get("/api/projects/p/datasets/big/versions/1").json()
    assert version["message"] == "from the CLI"


def test_cli_import_refusals_are_clear(shared_server, tmp_path):
    token = shared_server.token()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,x\n1,2\n3\n")
    args = ["--project", "nope", "--name", "d", "--server", shared_server.url, "--token", token]
    done = run_cli(shared_server, str(bad), *args)
    assert done.returncode == 1 and "404" in done.stderr and "nope" in done.stderr
    with shared_server.client(token) as client:
        client.post("/api/projects", json={"name": "q"}).raise_for_status()
    args[1] = "q"  # a project of its own: the server is shared with the test above
    done = run_cli(shared_server, str(bad), *args)
    assert done.returncode == 1 and "line 3 has 1 fields" in done.stderr, done.stderr
    done = run_cli(shared_server, str(tmp_path / "missing.csv"), *args)
    assert done.returncode == 2 and "no such file" in done.stderr
    done = run_cli(shared_server, str(bad), "--project", "q", "--name", "d", env={"REEF_URL": ""})
    assert done.returncode == 2 and "REEF_URL" in done.stderr
