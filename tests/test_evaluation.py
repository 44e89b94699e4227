"""The evaluator: scores against scikit-learn on the same predictions, the pictures, the
importance, and the run page that shows them (a real `reef serve` runs the module)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import modules_dir, start_server, wait_run
from reef import charts, evaluation, metric_help
from reef.runtime.export import export_sklearn

CLASSES = ["malignant", "benign"]


def svg_ok(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


@pytest.fixture(scope="module")
def cancer() -> dict:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    x, y = data.data.astype(np.float32), data.target
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:400], order[400:]
    columns = {n: x[test, i] for i, n in enumerate(names)}
    table = pa.table({**columns, "label": [CLASSES[v] for v in y[test]]})
    return {"x": x, "y": y, "names": names, "train": train, "test": table}


@pytest.fixture(scope="module")
def classifier(cancer, tmp_path_factory) -> Path:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = cancer["x"][cancer["train"]], cancer["y"][cancer["train"]]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    folder = tmp_path_factory.mktemp("classifier")
    export_sklearn(model, x, folder, cancer["names"], CLASSES)
    return folder


def regressor_dir(folder: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> Path:
    """A regressor in the old layout (one float32 input `x`), converted by skl2onnx."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    model = Ridge().fit(x, y)
    onnx = to_onnx(model, x[:1].astype(np.float32), target_opset=17)
    onnx.graph.input[0].name = "x"
    for node in onnx.graph.node:
        node.input[:] = ["x" if i == "X" else i for i in node.input]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())
    schema = {"inputs": {"name": "x", "features": names}, "outputs": {"kind": "raw"}}
    (folder / "schema.json").write_text(json.dumps(schema))
    return folder


def test_classification_scores_match_scikit_learn(classifier, cancer) -> None:
    from sklearn import metrics

    model = evaluation.ScoredModel(classifier)
    table = cancer["test"]
    truth = evaluation.labels_of(table, "label")
    scores = model.outputs(table)
    predicted = list(model.predict(table))
    found = evaluation.classify(truth, predicted, scores, model.classes)
    positive = np.array(truth) == "benign"
    assert model.task == "classification" and found.positive == "benign"
    assert found.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert found.metrics["macro_f1"] == pytest.approx(
        metrics.f1_score(truth, predicted, average="macro")
    )
    assert found.metrics["roc_auc"] == pytest.approx(metrics.roc_auc_score(positive, scores[:, 1]))
    assert found.metrics["average_precision"] == pytest.approx(
        metrics.average_precision_score(positive, scores[:, 1])
    )
    assert found.metrics["accuracy"] > 0.9 and found.metrics["evaluated_rows"] == 169
    assert found.matrix.sum() == 169 and np.trace(found.matrix) == round(
        169 * found.metrics["accuracy"]
    )
    for text in (
        charts.confusion_matrix(found.labels, found.matrix),
        charts.curve("ROC", *found.roc, "fpr", "tpr", diagonal=True),
        charts.curve("PR", *found.pr, "recall", "precision"),
    ):
        assert len(svg_ok(text)) > 5


def test_three_classes_give_no_roc() -> None:
    truth = ["a", "b", "c", "a"]
    scores = np.eye(3)[[0, 1, 2, 1]]
    found = evaluation.classify(truth, ["a", "b", "c", "b"], scores, ["a", "b", "c"])
    assert found.roc is None and "roc_auc" not in found.metrics
    assert found.metrics["accuracy"] == 0.75


def test_regression_scores_match_scikit_learn(tmp_path: Path) -> None:
    from sklearn import metrics
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x, y = data.data.astype(np.float32), data.target
    names = list(data.feature_names)
    model = evaluation.ScoredModel(regressor_dir(tmp_path / "m", x[:350], y[:350], names))
    table = pa.table({**{n: x[350:, i] for i, n in enumerate(names)}, "target": y[350:]})
    truth = evaluation.numbers_of(table, "target")
    predicted = model.predict(table)
    found = evaluation.regress(truth, predicted)
    assert model.task == "regression"
    assert found["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    assert found["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert found["r2"] == pytest.approx(metrics.r2_score(truth, predicted))
    assert 0.2 < found["r2"] < 0.8
    picture = svg_ok(charts.predicted_vs_actual(truth, predicted))
    assert len(picture.findall(".//{http://www.w3.org/2000/svg}circle")) == len(truth)
    importance = evaluation.permutation_importance(model, table, truth)
    assert {f["feature"] for f in importance} == set(names)
    assert importance[0]["feature"] in ("bmi", "s5")  # the two strongest in diabetes
    with pytest.raises(ValueError, match="not numbers"):
        evaluation.numbers_of(pa.table({"t": ["a"]}), "t")


def test_permutation_importance_finds_the_only_column_that_matters(classifier, cancer) -> None:
    model = evaluation.ScoredModel(classifier)
    table = cancer["test"]
    found = evaluation.permutation_importance(model, table, evaluation.labels_of(table, "label"))
    assert len(found) == 30 and found[0]["importance"] >= found[-1]["importance"]
    assert found[0]["importance"] > 0
    picture = charts.bars(
        "top", [f["feature"] for f in found[:5]], [f["importance"] for f in found[:5]]
    )
    assert len(svg_ok(picture).findall(".//{http://www.w3.org/2000/svg}rect")) == 6  # 5 + bg


def test_metric_help_explains_bare_and_step_keys() -> None:
    assert "test rows" in metric_help.explain("accuracy")
    assert metric_help.explain("evaluate/rmse") == metric_help.explain("rmse") != ""
    assert metric_help.explain("no_such_metric") == ""


# through a real server ------------------------------------------------------------------
PIPELINE = [
    {"name": "split", "module": "library/split", "inputs": {"data": "dataset:cancer"}},
    {
        "name": "train",
        "module": "library/gradient-boosting",
        "inputs": {"train": "split.train"},
        "params": {"n_estimators": 30},
        "register": "cancer",
    },
    {
        "name": "evaluate",
        "module": "library/evaluate",
        "inputs": {"model": "train.model", "test": "split.test"},
    },
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict:
    from sklearn.datasets import load_breast_cancer

    root = tmp_path_factory.mktemp("evaluate")
    data = load_breast_cancer()
    columns = {n.replace(" ", "_"): data.data[:, i] for i, n in enumerate(data.feature_names)}
    path = root / "cancer.parquet"
    pq.write_table(pa.table({**columns, "label": [CLASSES[v] for v in data.target]}), path)
    server = start_server(root / "data", modules_dir(root))
    try:
        with server.client() as client:
            client.post("/api/projects", json={"name": "ev"}).raise_for_status()
            up = client.post(
                "/api/projects/ev/datasets",
                data={"name": "cancer"},
                files={"file": ("cancer.parquet", path.read_bytes())},
            )
            assert up.status_code == 201, up.text
            resp = client.post("/api/projects/ev/pipelines", json={"name": "p", "steps": PIPELINE})
            assert resp.status_code == 201, resp.text
            run = client.post("/api/projects/ev/pipelines/p/runs", json={}).json()
            state = wait_run(client, "ev", run["id"])
            assert state["run"]["status"] == "succeeded", state["run"]["error"]
            yield {"server": server, "state": state, "client": client}
    finally:
        server.stop()


def artifact(client, state: dict, name: str) -> bytes:
    found = next(a for a in state["artifacts"] if a["name"] == name)
    resp = client.get(f"/api/projects/ev/runs/{state['run']['id']}/artifacts/{found['id']}")
    assert resp.status_code == 200
    return resp.content


@pytest.mark.slow
def test_evaluate_step_logs_pictures_and_scores_the_served_model(evaluated) -> None:
    from sklearn import metrics

    client, state = evaluated["client"], evaluated["state"]
    names = {a["name"] for a in state["artifacts"]}
    pictures = {"confusion_matrix.svg", "roc_curve.svg", "pr_curve.svg", "feature_importance.svg"}
    assert pictures | {"confusion_matrix.json", "feature_importance.json"} <= names
    for name in pictures:
        svg_ok(artifact(client, state, name).decode())
    importance = json.loads(artifact(client, state, "feature_importance.json"))
    assert importance["method"] == "permutation" and len(importance["features"]) == 30
    run_dir = evaluated["server"].data / "runs" / str(state["run"]["id"])
    test = pq.read_table(run_dir / "split" / "outputs" / "test.parquet")
    rows = [{k: v for k, v in r.items() if k != "label"} for r in test.to_pylist()]
    answer = client.post("/api/projects/ev/models/cancer/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]
    truth = test.column("label").to_pylist()
    predicted = [p["label"] for p in served]
    second = [p["probabilities"][1] for p in served]  # ROC scores the second class
    positive = client.get("/api/projects/ev/models/cancer").json()["versions"][0]["schema"]
    positive = positive["outputs"]["classes"][1]
    logged = state["metrics"]
    assert logged["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert logged["roc_auc"] == pytest.approx(
        metrics.roc_auc_score([t == positive for t in truth], second), abs=1e-6
    )


@pytest.mark.slow
def test_run_page_shows_pictures_and_explains_metrics(evaluated) -> None:
    client, state = evaluated["client"], evaluated["state"]
    page = client.get(f"/projects/ev/runs/{state['run']['id']}").text
    for name in ("confusion_matrix.svg", "roc_curve.svg", "feature_importance.svg"):
        found = next(a for a in state["artifacts"] if a["name"] == name)
        assert f'<img src="/projects/ev/runs/{state["run"]["id"]}/artifacts/{found["id"]}"' in page
    assert f'title="{metric_help.explain("roc_auc")}"' in page
