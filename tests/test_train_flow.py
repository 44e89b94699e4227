"""The "Train a model" flow's pipeline builder (pure): the spec for each task."""

from __future__ import annotations

import pyarrow as pa
from sklearn.datasets import load_breast_cancer, load_diabetes

from reef.pipeline import parse_pipeline
from reef.tasks import check_task, detect_task
from reef.train_flow import flow_name, pipeline_for

BASE = {"split", "gradient-boosting", "mlp-classifier", "evaluate"}


def _cancer() -> pa.Table:
    b = load_breast_cancer()
    cols = {str(n): b.data[:, i] for i, n in enumerate(b.feature_names)}
    labels = ["malignant" if v == 0 else "benign" for v in b.target]
    ids = [f"p{i:04d}" for i in range(len(labels))]
    return pa.table({"patient": ids, **cols, "diagnosis": labels})


def _steps(plan) -> dict:
    parse_pipeline(plan.spec)  # a spec the pipeline parser takes
    return {s["name"]: s for s in plan.spec["steps"]}


def test_names_are_pipeline_names() -> None:
    assert flow_name("diagnosis") == "predict-diagnosis"
    assert flow_name("Mean Radius (mm)") == "predict-mean-radius-mm"
    assert flow_name("???") == "predict-target"


def test_classification_falls_back_to_gradient_boosting() -> None:
    task = detect_task(_cancer(), "diagnosis")
    plan = pipeline_for("cancer", task, BASE)
    steps = _steps(plan)
    assert plan.name == "predict-diagnosis" and plan.model_module == "gradient-boosting"
    assert steps["split"]["inputs"] == {"data": "dataset:cancer"}
    assert steps["split"]["params"]["label"] == "diagnosis"
    assert steps["split"]["params"]["stratify"] is True
    assert steps["train"]["register"] == "predict-diagnosis"
    assert steps["train"]["params"]["label"] == "diagnosis"
    assert steps["evaluate"]["inputs"] == {"model": "train.model", "test": "split.test"}
    assert steps["evaluate"]["params"] == {"label": "diagnosis"}
    assert plan.spec["description"].startswith("Made by 'Train a model'")


def test_tabular_learner_once_installed_gets_the_left_out_columns() -> None:
    task = detect_task(_cancer(), "diagnosis", exclude=["mean area"])
    plan = pipeline_for("cancer", task, {*BASE, "tabular-learner"})
    train = _steps(plan)["train"]
    assert train["module"] == "library/tabular-learner"
    assert train["params"]["target"] == "diagnosis"
    assert train["params"]["task"] == "classification"
    assert set(train["params"]["exclude"]) == {"patient", "mean area"}  # the id is left out too


def test_regression_is_not_refused_and_does_not_stratify() -> None:
    b = load_diabetes()
    t = pa.table({**{n: b.data[:, i] for i, n in enumerate(b.feature_names)}, "y": b.target})
    plan = pipeline_for("diabetes", detect_task(t, "y"), BASE)
    steps = _steps(plan)
    assert steps["split"]["params"]["stratify"] is False
    assert steps["train"]["module"] == "library/tabular-learner"  # planner names it if missing
    assert steps["train"]["params"]["task"] == "regression"


def test_text_and_image_tasks() -> None:
    texts = ["the delivery was late and the box was broken", "great service, fast and kind"] * 10
    t = pa.table({"review": texts, "mood": ["bad", "good"] * 10})
    steps = _steps(pipeline_for("reviews", detect_task(t, "mood"), BASE))
    assert steps["train"]["module"] == "library/text-classifier"
    images = pa.table({"image": [bytes([i]) for i in range(6)], "label": ["a", "b"] * 3})
    task = check_task(images, "label", "image_classification")
    steps = _steps(pipeline_for("pics", task, BASE))
    assert steps["train"]["module"] == "library/image-classifier"
    assert steps["pixels"]["inputs"] == {"data": "split.test"}
    assert steps["evaluate"]["inputs"]["test"] == "pixels.data"


def test_the_verdict_in_plain_words() -> None:
    from reef.server.train_result import importance, verdict

    assert verdict({"evaluate/accuracy": 0.9646, "evaluate/evaluated_rows": 113.0}) == (
        "Right on 109 of 113 held-out rows (96%)."
    )
    assert verdict({"rmse": 12.345, "r2": 0.48}) == (
        "Typically off by 12.3 (RMSE) on the held-out rows; explains 48% of the variation (R²)."
    )
    assert verdict({"r2": -0.2, "rmse": 3.0}).endswith("explains 0% of the variation (R²).")
    assert verdict({"train_accuracy": 1.0}) is None  # the evaluator has not logged yet
    found = importance(
        {},
        {"feature_importance.json": {"method": "permutation", "features": [
            {"feature": "worst radius", "importance": 0.04},
            {"feature": "mean area", "importance": 0.01}]}},
    )  # fmt: skip
    assert [f["column"] for f in found] == ["worst radius", "mean area"]
    assert found[0]["share"] == 1.0 and found[1]["share"] == 0.25
