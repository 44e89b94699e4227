"""The evaluator's parts: scores against scikit-learn on the same predictions (old-format
models), the pictures, the importance, the metric explanations. tests/test_raw_row_models.py
runs the module itself on a real `reef serve`, with the run page that shows its pictures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

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
