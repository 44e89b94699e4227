"""Raw-row (format 2) models end to end on one real `reef serve`: the evaluator's scores
match the served predictions for a classifier (missing values, a category, a text column)
and a regressor, and monitoring measures drift on numbers and categories, text left out."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import modules_dir, patience, start_server, wait_run
from reef.model_io import ModelSchema
from reef.runtime import drift

CLINICS = ["north", "south", "east"]


def cancer_table(rows: int = 360, seed: int = 0) -> pa.Table:
    """Breast-cancer rows with 10% of numbers missing, a clinic, a free-text note."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    columns: dict = {}
    for i, name in enumerate(data.feature_names[:10]):
        values = data.data[:rows, i]
        columns[name] = [None if rng.random() < 0.1 else float(v) for v in values]
    columns["clinic"] = [None if rng.random() < 0.05 else CLINICS[i % 3] for i in range(rows)]
    columns["note"] = [f"patient {i} seen at visit {i % 7}" for i in range(rows)]
    columns["diagnosis"] = [["malignant", "benign"][t] for t in data.target[:rows]]
    return pa.table(columns)


def diabetes_table() -> pa.Table:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    columns = {n: data.data[:, i] for i, n in enumerate(data.feature_names)}
    return pa.table({**columns, "progression": data.target})


def pipeline(dataset: str, label: str, register: str, stratify: bool) -> list[dict]:
    return [
        {
            "name": "split",
            "module": "library/split",
            "inputs": {"data": f"dataset:{dataset}"},
            "params": {"label": label, "stratify": stratify},
        },
        {
            "name": "train",
            "module": "library/tabular-learner",
            "inputs": {"train": "split.train"},
            "params": {"target": label},
            "register": register,
        },
        {
            "name": "evaluate",
            "module": "library/evaluate",
            "inputs": {"model": "train.model", "test": "split.test"},
            "params": {"label": label},
        },
    ]


def run(client, root, name: str, table: pa.Table, steps: list[dict]) -> dict:
    path = root / f"{name}.parquet"
    pq.write_table(table, path)
    up = client.post(
        "/api/projects/raw/datasets",
        data={"name": name},
        files={"file": (path.name, path.read_bytes())},
    )
    assert up.status_code == 201, up.text
    resp = client.post("/api/projects/raw/pipelines", json={"name": name, "steps": steps})
    assert resp.status_code == 201, resp.text
    started = client.post(f"/api/projects/raw/pipelines/{name}/runs", json={}).json()
    state = wait_run(client, "raw", started["id"])
    assert state["run"]["status"] == "succeeded", state["run"]["error"]
    return state


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    server = start_server(root / "data", modules_dir(root))
    try:
        with server.client() as client:
            client.post("/api/projects", json={"name": "raw"}).raise_for_status()
            states = {
                "cancer": run(client, root, "cancer", cancer_table(),
                              pipeline("cancer", "diagnosis", "cancer", True)),
                "diabetes": run(client, root, "diabetes", diabetes_table(),
                                pipeline("diabetes", "progression", "diabetes", False)),
            }  # fmt: skip
            yield server, client, states
    finally:
        server.stop()


def split_test(server, state: dict) -> pa.Table:
    folder = server.data / "runs" / str(state["run"]["id"]) / "split" / "outputs"
    return pq.read_table(folder / "test.parquet")


def served_predictions(client, model: str, table: pa.Table, label: str) -> list[dict]:
    rows = [{k: v for k, v in r.items() if k != label} for r in table.to_pylist()]
    answer = client.post(f"/api/projects/raw/models/{model}/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


@pytest.mark.slow
def test_classifier_scores_match_the_served_raw_row_predictions(served) -> None:
    from sklearn import metrics

    server, client, states = served
    state = states["cancer"]
    test = split_test(server, state)
    assert test.column("clinic").null_count + test.column("mean radius").null_count > 0
    served_rows = served_predictions(client, "cancer", test, "diagnosis")
    truth = test.column("diagnosis").to_pylist()
    predicted = [p["label"] for p in served_rows]
    schema = client.get("/api/projects/raw/models/cancer").json()["versions"][0]["schema"]
    positive = schema["outputs"]["classes"][1]
    second = [p["probabilities"][1] for p in served_rows]
    logged = state["metrics"]
    assert logged["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert logged["macro_f1"] == pytest.approx(metrics.f1_score(truth, predicted, average="macro"))
    assert logged["roc_auc"] == pytest.approx(
        metrics.roc_auc_score([t == positive for t in truth], second), abs=1e-6
    )
    assert logged["accuracy"] > 0.85
    names = {a["name"] for a in state["artifacts"]}
    assert {"confusion_matrix.svg", "roc_curve.svg", "pr_curve.svg"} <= names
    assert {"feature_importance.svg", "feature_importance.json"} <= names


@pytest.mark.slow
def test_regressor_scores_match_the_served_predictions(served) -> None:
    from sklearn import metrics

    server, client, states = served
    state = states["diabetes"]
    test = split_test(server, state)
    served_rows = served_predictions(client, "diabetes", test, "progression")
    truth = np.array(test.column("progression").to_pylist())
    predicted = np.array([p["value"] for p in served_rows])
    logged = state["metrics"]
    assert logged["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    assert logged["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert logged["r2"] == pytest.approx(metrics.r2_score(truth, predicted))
    assert 0.2 < logged["r2"] < 0.8 and logged["evaluated_rows"] == len(truth)
    names = {a["name"] for a in state["artifacts"]}
    assert {"predicted_vs_actual.svg", "feature_importance.svg"} <= names
    assert "confusion_matrix.svg" not in names


@pytest.mark.slow
def test_monitoring_a_raw_row_model_measures_numbers_and_categories(served) -> None:
    server, client, states = served
    test = split_test(server, states["cancer"])
    rows = [{k: v for k, v in r.items() if k != "diagnosis"} for r in test.to_pylist()]
    for row in rows:  # every request now comes from one clinic, or a new one
        row["clinic"] = "west" if row["clinic"] == "east" else "north"
    answer = client.post("/api/projects/raw/models/cancer/predict", json={"rows": rows * 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["unseen_categories"]["clinic"] > 0
    found = {}
    deadline = time.monotonic() + patience(20)
    while time.monotonic() < deadline and not found:
        monitor = client.get("/api/projects/raw/models/cancer/monitoring").json()
        found = {f["feature"]: f for f in monitor["drift"]["features"]}
        time.sleep(0.3)
    assert "note" not in found and "clinic" in found
    assert found["clinic"]["psi"] > 0.2 and found["clinic"]["ks"] is None
    assert found["mean radius"]["ks"] is not None  # 72 test rows: numbers' PSI is noisy
    assert monitor["drift"]["drifted"][0]["feature"] == "clinic"  # the largest PSI


def test_monitored_matrix_codes_categories_and_leaves_text_out() -> None:
    schema = ModelSchema(
        {
            "format": 2,
            "inputs": {
                "features": [
                    {"name": "a", "role": "number", "input": "a", "dtype": "float32"},
                    {"name": "note", "role": "text", "input": "note", "dtype": "string"},
                    {"name": "c", "role": "category", "input": "c", "dtype": "string",
                     "choices": ["x", "y"]},
                ]
            },
            "outputs": {"kind": "raw", "scores": "y"},
        }
    )  # fmt: skip
    feeds = schema.feeds([{"a": 1.5, "note": "hi", "c": "y"}, {"a": None, "note": "", "c": None},
                          {"a": 2, "note": "yo", "c": "z"}])  # fmt: skip
    x = drift.monitored_matrix(schema, feeds)
    assert [f.name for f in drift.monitored(schema)] == ["a", "c"]
    assert np.array_equal(x, np.array([[1.5, 1], [np.nan, np.nan], [2, 2]]), equal_nan=True)
    train = np.array([[float(i), i % 2] for i in range(100)])
    ref = drift.reference(train, ["a", "c"], drift.categories(schema))
    assert ref["features"][1] == {"name": "c", "kind": "category", "choices": ["x", "y"],
                                  "shares": [0.5, 0.5, 0.0]}  # fmt: skip
    same = drift.drift(train, ref, train)
    assert all(s["psi"] < 0.01 for s in same)
    shifted = train.copy()
    shifted[:, 1] = 2  # every row now has a category not seen in training
    scores = {s["feature"]: s for s in drift.drift(shifted, ref, train)}
    assert scores["c"]["psi"] > 1 and scores["c"]["ks"] is None and scores["a"]["ks"] == 0


def test_lightgbm_thresholds_become_float32_and_wine_exports_exactly(tmp_path) -> None:
    from sklearn.datasets import load_wine

    from reef.learners import estimator, fit, prepare
    from reef.preprocess import frame
    from reef.runtime.export_raw import export_pipeline

    data = load_wine()
    columns = {n: data.data[:, i] for i, n in enumerate(data.feature_names)}
    table = pa.table({**columns, "cultivar": [f"c{t}" for t in data.target]})
    prepared = prepare(table, "cultivar")
    pipeline = fit(prepared, estimator("boosting", True, 0), scale=False)
    found = []

    def walk(node: dict) -> None:
        if "threshold" in node:
            found.append(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in pipeline.named_steps["model"].booster_.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    thresholds = np.array(found)
    assert len(thresholds) > 100
    assert np.array_equal(thresholds.astype(np.float32).astype(np.float64), thresholds)
    plain = estimator("boosting", True, 0)  # the same model, thresholds as LightGBM left them
    x = pipeline.named_steps["prepare"].transform(
        frame(ModelSchema.of(prepared.features).feeds(prepared.rows))
    )  # float32 training values, as served
    plain.fit(x, prepared.y)
    model = pipeline.named_steps["model"]
    assert np.array_equal(plain.predict_proba(x), model.predict_proba(x))
    result = export_pipeline(
        pipeline, prepared.rows, tmp_path, prepared.features, task="classification"
    )
    assert result.schema["parity"]["max_abs_diff"] < 1e-5
