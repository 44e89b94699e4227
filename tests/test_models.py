"""The model registry in-process: gates, promotion and rollback, card, compare, serving by
alias with a hot swap, A/B and shadow, the prediction log, feedback, drift, batch scoring."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conftest import ADMIN_PASSWORD, Server, api_token, csrf, login, start_server
from reef.hub import Hub
from reef.runtime.export import export_model
from reef.settings import Settings

FEATURES = ["a", "b", "c", "d"]
CLASSES = ["x", "y", "z"]


def training_data(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    return x, y


def register(hub, tmp_path: Path, project: str = "lab", name: str = "m", iters: int = 200) -> int:
    """Export a small scikit-learn classifier and register it as the next version."""
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    model = LogisticRegression(max_iter=iters).fit(x, y)
    dest = tmp_path / f"export-{name}-{iters}"
    export_model(model, x, dest, FEATURES, CLASSES)
    accuracy = float(model.score(x, y))
    return hub.model_service.register_dir(
        hub.projects.get(project).id,
        name,
        dest,
        run_id=0,
        step_name="train",
        metrics={"accuracy": accuracy},
        lineage={"run_id": 0, "modules": [], "datasets": ["table@1"]},
        author="admin",
        train=x,
    )


def lab_server(root: Path, iters: tuple[int, ...] = (200,)) -> Server:
    """A `reef serve` over a fresh data dir holding project `lab` with model `m` (one version
    per entry of `iters`)."""
    data = root / "data"
    hub = Hub.open(Settings(data_dir=data, admin_password=ADMIN_PASSWORD), start_queue=False)
    hub.projects.create("lab", hub.admin(), "")
    for n in iters:
        register(hub, root, iters=n)
    hub.datasets.write_table("lab", "table", labelled_table())
    hub.close()
    return start_server(data)


def labelled_table() -> pa.Table:
    x, y = training_data(seed=1, n=300)
    return pa.table(
        {**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": [CLASSES[k] for k in y]}
    )


@pytest.fixture
def lab(app_client, tmp_path):
    """Project `lab` with model `m` v1 (well trained) and v2 (one iteration: worse)."""
    headers = api_token(app_client)
    app_client.headers.update(headers)
    assert app_client.post("/api/projects", json={"name": "lab"}).status_code == 201
    hub = app_client.app.state.hub
    register(hub, tmp_path, iters=200)
    register(hub, tmp_path, iters=1)
    hub.datasets.write_table("lab", "table", labelled_table())
    return hub


API = "/api/projects/lab/models/m"


def promote(client, version: int, **body):
    return client.post(f"{API}/versions/{version}/promote", json=body)


def test_promotion_refused_by_gates_then_accepted(app_client, lab):
    v1 = lab.models.version(lab.model_service.model_id("lab", "m"), 1)
    gates = {
        "checks": [
            {"type": "metric", "metric": "accuracy", "min": v1["metrics"]["accuracy"] - 0.01},
            {"type": "parity"},
            {"type": "latency", "max_ms": 200},
            {"type": "better_than", "dataset": "table", "label": "label"},
        ]
    }
    assert app_client.post(f"{API}/gates", json=gates).status_code == 200
    assert promote(app_client, 1).status_code == 200  # nothing to beat yet
    refused = promote(app_client, 2)
    assert refused.status_code == 409, refused.text
    failed = [c["type"] for c in refused.json()["checks"] if not c["ok"]]
    assert "metric" in failed and "better_than" in failed
    assert "accuracy" in refused.json()["detail"]
    assert app_client.get(API).json()["aliases"] == {"production": 1}
    actions = [a["action"] for a in lab.audit.list("lab")]
    assert "model.promote.refused" in actions


def test_owner_override_is_audited_and_rollback_is_one_call(app_client, lab):
    app_client.post(
        f"{API}/gates", json={"checks": [{"type": "metric", "metric": "accuracy", "min": 2}]}
    )
    assert promote(app_client, 1).status_code == 409
    done = promote(app_client, 1, override=True, reason="first deploy")
    assert done.status_code == 200 and done.json()["override"] is True
    promote(app_client, 2, override=True, reason="try v2")
    assert app_client.get(API).json()["aliases"]["production"] == 2
    back = app_client.post(f"{API}/rollback", json={"alias": "production"}).json()
    assert back["version"] == 1 and back["previous"] == 2
    audit = lab.audit.list("lab")
    override = next(a for a in audit if a["action"] == "model.promote")
    assert '"override": true' in override["detail"] and "try v2" in override["detail"]
    assert audit[0]["action"] == "model.rollback"
    history = app_client.get(API).json()["promotions"]
    assert [p["action"] for p in history] == ["rollback", "promote", "promote"]


def test_project_gates_apply_too_and_staging_is_free(app_client, lab):
    gates = {"checks": [{"type": "metric", "metric": "accuracy", "min": 2}]}
    assert app_client.post("/api/projects/lab/gates", json=gates).status_code == 200
    assert promote(app_client, 2).status_code == 409
    assert promote(app_client, 2, alias="staging").status_code == 200
    dry = app_client.get(f"{API}/versions/2/gate").json()
    assert dry["ok"] is False and dry["checks"][0]["value"] < 2


def test_bad_gates_are_a_clear_400(app_client, lab):
    resp = app_client.post(f"{API}/gates", json={"checks": [{"type": "metric"}]})
    assert resp.status_code == 400 and "min" in resp.json()["detail"]


def test_card_edit_and_compare(app_client, lab):
    resp = app_client.patch(API, json={"description": "toy", "intended_use": "tests only"})
    assert resp.status_code == 200
    assert resp.json()["card"]["intended_use"] == "tests only"
    compare = app_client.get(f"{API}/compare", params={"a": 1, "b": 2}).json()
    row = compare["metrics"][0]
    assert row["metric"] == "accuracy" and row["delta"] == pytest.approx(row["b"] - row["a"])
    assert compare["features"] == {"added": [], "removed": [], "same_order": True}


def test_pages_render_and_card_form_saves(app_client, lab):
    login(app_client)
    page = app_client.get("/projects/lab/models/m")
    assert page.status_code == 200 and "Model card" in page.text
    token = csrf(page.text)
    saved = app_client.post(
        "/projects/lab/models/m/card",
        data={
            "description": "d",
            "intended_use": "demo",
            "limitations": "none",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert saved.status_code in (302, 303), saved.text
    assert "demo" in app_client.get("/projects/lab/models/m").text
    assert app_client.get("/projects/lab/models/m/compare?a=1&b=2").status_code == 200
    assert app_client.get("/projects/lab/models/m/monitoring").status_code == 200


def test_hot_swap_under_concurrent_requests(app_client, lab):
    """Four threads predict over HTTP while production flips between v1 and v2 ten times:
    every request succeeds, and both versions answered."""
    rows = training_data(seed=2, n=8)[0].tolist()
    failures, versions, stop = [], set(), threading.Event()

    def hammer():
        while not stop.is_set():
            resp = app_client.post(f"{API}/predict", json={"rows": rows})
            if resp.status_code != 200:
                failures.append(resp.text)
            else:
                versions.add(resp.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(10):
        assert promote(app_client, 1 + i % 2).status_code == 200
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and versions == {1, 2}


def test_ab_split_follows_the_ratio(app_client, lab):
    promote(app_client, 1)
    resp = app_client.post(f"{API}/traffic", json={"mode": "split", "version": 2, "percent": 25})
    assert resp.status_code == 200, resp.text
    rows = [[0.1, 0.2, 0.3, 0.4]]
    arms = [lab.model_service.predict("lab", "m", rows)["model_version"] for _ in range(2000)]
    assert abs(arms.count(2) / 2000 - 0.25) < 0.03
    sticky = {
        lab.model_service.predict("lab", "m", rows, key="user-7")["model_version"]
        for _ in range(20)
    }
    assert len(sticky) == 1


def test_shadow_is_logged_not_answered_and_feedback_gives_accuracy(app_client, lab):
    promote(app_client, 1)
    app_client.post(f"{API}/traffic", json={"mode": "shadow", "version": 2})
    x, y = training_data(seed=3, n=60)
    answers = [app_client.post(f"{API}/predict", json={"rows": [row]}).json() for row in x.tolist()]
    assert {a["model_version"] for a in answers} == {1}
    labels = [
        {"request_id": a["request_id"], "label": CLASSES[k]}
        for a, k in zip(answers, y, strict=True)
    ]
    assert app_client.post(f"{API}/feedback", json=labels).json() == {"labelled": 60}
    lab.model_service.flush()
    stats = app_client.get(f"{API}/monitoring").json()
    by_arm = {(v["version"], v["arm"]): v for v in stats["versions"]}
    assert by_arm[1, "main"]["rows"] == 60 and by_arm[2, "shadow"]["rows"] == 60
    assert by_arm[1, "main"]["accuracy"] > by_arm[2, "shadow"]["accuracy"]
    assert by_arm[1, "main"]["labelled"] == 60
    assert stats["latency_ms"]["p50"] > 0 and stats["requests"] == 60


def test_drift_alert_from_shifted_inputs(app_client, lab):
    promote(app_client, 1)
    service = lab.model_service
    x = training_data(seed=4, n=300)[0]
    service.predict("lab", "m", x.tolist())
    service.flush()
    assert service.monitor.check(("lab", "m"), service.model_id("lab", "m")) == []
    service.predict("lab", "m", (x + 3.0).tolist())
    service.flush()
    alerts = app_client.get(f"{API}/monitoring").json()["alerts"]
    assert {a["kind"] for a in alerts} == {"drift", "ks"}  # PSI and KS both see it
    listed = app_client.get("/api/projects/lab/alerts").json()
    assert listed[0]["model"] == "m" and "drift" in listed[0]["message"]


def test_ks_drift_has_its_own_threshold_and_alert(app_client, lab):
    """KS against the training sample kept with the version: in-distribution inputs stay
    quiet; shifted ones raise a `ks` alert while PSI, its threshold set out of reach, does not."""
    promote(app_client, 1)
    service = lab.model_service
    v1 = app_client.get(f"{API}/versions/1").json()
    assert v1["reference"]["sample"]["rows"] == 600
    x = training_data(seed=4, n=300)[0]
    service.predict("lab", "m", x.tolist())
    service.flush()
    quiet = app_client.get(f"{API}/monitoring").json()
    assert quiet["alerts"] == [] and all(f["ks"] < 0.15 for f in quiet["drift"]["features"])
    bad = app_client.patch(f"{API}/monitor", json={"ks_threshold": "high"})
    assert bad.status_code == 400 and "ks_threshold" in bad.json()["detail"]
    config = {"ks_threshold": 0.3, "psi_threshold": 1000}
    assert app_client.patch(f"{API}/monitor", json=config).json()["ks_threshold"] == 0.3
    service.predict("lab", "m", (x + 3.0).tolist())
    service.flush()
    stats = app_client.get(f"{API}/monitoring").json()
    assert [a["kind"] for a in stats["alerts"]] == ["ks"], stats["alerts"]
    assert "KS" in stats["alerts"][0]["message"] and stats["drift"]["ks_drifted"]
    assert stats["drift"]["features"][0]["ks"] > 0.3
    page = app_client.get("/projects/lab/models/m/monitoring").text
    assert "<th>KS</th>" in page


def test_batch_prediction_is_a_queued_job_that_writes_a_new_dataset_version(app_client, lab):
    resp = app_client.post(f"{API}/batch", json={"dataset": "table", "model_version": 1})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running", "done")
    assert job["request"] == {
        "dataset": "table",
        "version": 1,  # pinned when asked
        "output": "m-scores-1",  # a new dataset, never a version of the training data
        "column": "prediction",
        "model_version": 1,
    }
    lab.model_service.batches.wait()
    done = app_client.get(job["links"]["api"]).json()
    assert done["status"] == "done", done
    assert done["result"]["version"] == 1 and done["result"]["num_rows"] == 300
    assert done["links"]["dataset"] == "/projects/lab/datasets/m-scores-1?version=1"
    assert lab.datasets.latest_version("lab", "table") == 1
    table = lab.datasets.open("lab", "m-scores-1").to_table()
    assert {"prediction", "prediction_probability", "label"} <= set(table.column_names)
    agree = np.mean(
        np.array(table["prediction"].to_pylist()) == np.array(table["label"].to_pylist())
    )
    assert agree > 0.8
    assert [j["id"] for j in app_client.get(f"{API}/batch").json()] == [job["id"]]


def test_bad_batch_requests_are_refused_and_store_no_job(app_client, lab):
    for body, status, fragment in (
        ({"version": 1}, 400, "dataset"),
        ({"dataset": "nope"}, 404, "nope"),
        ({"dataset": "table", "version": 9}, 404, "9"),
        ({"dataset": "table", "model_version": "gone"}, 400, "gone"),
        ({"dataset": "table", "output": "Bad Name"}, 400, "invalid dataset name"),
    ):
        resp = app_client.post(f"{API}/batch", json=body)
        assert resp.status_code == status and fragment in resp.json()["detail"], resp.text
    assert app_client.get(f"{API}/batch").json() == []
    assert app_client.get(f"{API}/batch/1").status_code == 404


def test_batch_jobs_resume_after_a_restart(app_client, lab):
    """What a stopped server left: a running job fails as interrupted, a queued one runs."""
    batches = lab.model_service.batches
    model_id = lab.model_service.model_id("lab", "m")
    request = {"dataset": "table", "version": 1, "output": "scored", "column": "p"}
    running = batches.jobs.create(model_id, {**request, "model_version": 1}, "admin")
    batches.jobs.start(running)
    queued = batches.jobs.create(model_id, {**request, "model_version": 2}, "admin")
    batches.resume()
    batches.wait()
    assert "interrupted" in batches.jobs.get(running)["error"]
    assert batches.jobs.get(queued)["result"]["dataset"] == "scored"
    assert lab.datasets.open("lab", "scored").to_table().num_rows == 300


def test_batch_from_the_model_page(app_client, lab):
    login(app_client)
    token = csrf(app_client.get("/projects/lab/models/m").text)
    headers = {"HX-Request": "true"}
    data = {"dataset": "table", "version": "", "output": "out", "_csrf_token": token}
    resp = app_client.post("/projects/lab/models/m/batch", data=data, headers=headers)
    assert resp.status_code == 200 and 'id="batch-jobs"' in resp.text
    lab.model_service.batches.wait()
    table = app_client.get("/projects/lab/models/m/batch").text
    assert "/projects/lab/datasets/out?version=1" in table and "hx-trigger" not in table
    bad = app_client.post(
        "/projects/lab/models/m/batch", data={**data, "dataset": "nope"}, headers=headers
    )
    assert bad.status_code == 404 and "nope" in bad.text and 'role="alert"' in bad.text


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([[1.0, 2.0]], "4 features"),
        ([["a", 1, 2, 3]], "number"),
        ([[True, 1, 2, 3]], "number"),
        ([[1e300, 1, 2, 3]], "finite"),
        ("nope", "Expected `array`"),
    ],
)
def test_bad_rows_are_a_clear_400(app_client, lab, rows, fragment):
    resp = app_client.post(f"{API}/predict", json={"rows": rows})
    assert resp.status_code == 400 and fragment in resp.json()["detail"]


def test_nan_and_huge_bodies_are_refused(app_client, lab):
    nan = app_client.post(
        f"{API}/predict",
        content=b'{"rows": [[NaN, 1, 2, 3]]}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400, nan.text
    huge = app_client.post(
        f"{API}/predict",
        content=b"[" + b"1," * (50 << 20) + b"1]",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    ok = app_client.post(f"{API}/predict", json={"rows": [[0, 0, 0, 0]]})
    assert ok.status_code == 200
