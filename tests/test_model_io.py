"""Raw-row models (schema.json format 2): the feeds of raw rows, the export of a Pipeline with
its preprocessing in one ONNX graph, parity with a relative tolerance, and serving."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from reef.errors import InvalidInput
from reef.learners import estimator, fit, prepare
from reef.model_io import ModelSchema, describe_features, example_rows, input_names
from reef.preprocess import frame
from reef.runtime.export_raw import export_pipeline
from reef.runtime.serving import Predictor


def clinic_table(rows: int = 240, seed: int = 0) -> pa.Table:
    """Numbers with gaps, a category, a boolean, a date, a text column and a label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    age = rng.normal(50 + 10 * y, 8)
    age[rng.random(rows) < 0.15] = np.nan
    clinic = [
        None if r < 0.1 else ("north" if r < 0.5 + 0.3 * t else "south")
        for r, t in zip(rng.random(rows), y, strict=True)
    ]
    words = {0: "calm visit routine check", 1: "pain worse pain urgent referral"}  # a repeat
    return pa.table(
        {
            "patient age": pa.array(age, from_pandas=True),
            "clinic": pa.array(clinic),
            "smoker": pa.array(
                [bool(r < 0.2 + 0.4 * t) for r, t in zip(rng.random(rows), y, strict=True)]
            ),
            "visit": pa.array(
                [
                    dt.date(2024, 1, 1) + dt.timedelta(days=int(d))
                    for d in rng.integers(0, 300, rows)
                ]
            ),
            "notes": pa.array([f"{words[int(t)]} day {i}" for i, t in enumerate(y)]),
            "label": pa.array(["sick" if t else "well" for t in y]),
        }
    )


ROW = {
    "patient age": 61.5,
    "clinic": "north",
    "smoker": True,
    "visit": "2024-03-01",
    "notes": "pain",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    table = clinic_table()
    prepared = prepare(table, "label")
    pipeline = fit(prepared, estimator("boosting", True, 0), scale=False)
    dest = tmp_path_factory.mktemp("raw")
    export_pipeline(
        pipeline, prepared.rows, dest, prepared.features, task="classification", target="label"
    )
    return dest, pipeline, prepared


def test_input_names_are_onnx_safe_and_distinct() -> None:
    assert input_names(["mean radius", "mean-radius", "1st", ""]) == [
        "mean_radius",
        "mean_radius_2",
        "c_1st",
        "column",
    ]


def test_feeds_name_the_row_the_feature_and_why() -> None:
    table = clinic_table(40)
    roles = {
        "patient age": "number",
        "clinic": "category",
        "smoker": "boolean",
        "visit": "date",
        "notes": "text",
    }
    schema = ModelSchema.of(describe_features(table, roles))
    unseen: Counter[str] = Counter()
    feeds = schema.feeds(
        [ROW, {**ROW, "clinic": "east", "patient age": None, "notes": None}], unseen
    )
    assert feeds["patient_age"].dtype == np.float32 and np.isnan(feeds["patient_age"][1, 0])
    assert feeds["visit"][0, 0] == (dt.date(2024, 3, 1) - dt.date(1970, 1, 1)).days
    assert list(feeds["notes"][:, 0]) == ["pain", ""] and unseen == Counter({"clinic": 1})
    bad = [
        ({"patient age": "abc"}, "row 1: 'patient age' expected a number, got text 'abc'"),
        ({"clinic": 3}, "row 1: 'clinic' expected text, got the number 3"),
        ({"smoker": "yes"}, "row 1: 'smoker' expected true or false"),
        ({"visit": "soon"}, "row 1: 'visit' expected a date like 2024-01-31"),
    ]
    for change, message in bad:
        with pytest.raises(InvalidInput, match=message):
            schema.feeds([ROW, {**ROW, **change}])
    with pytest.raises(InvalidInput, match="row 0: 'clinic' is missing"):
        schema.feeds([{k: v for k, v in ROW.items() if k != "clinic"}])
    described = {f.name: f for f in schema.features}
    assert described["clinic"].choices == ("north", "south") and described["clinic"].missing > 0
    assert described["smoker"].typical in (0.0, 1.0)  # the most frequent, not a median of 0/1
    (example,) = example_rows(schema)
    assert example["visit"].startswith("2024-") and example["notes"] is None
    assert schema.feeds([example])["clinic"][0, 0] == described["clinic"].typical


def test_pipeline_export_is_one_graph_with_one_input_per_column(exported) -> None:
    import onnxruntime as ort

    dest, _, _ = exported
    schema = json.loads((dest / "schema.json").read_text())
    assert schema["format"] == 2 and schema["task"] == "classification"
    assert schema["outputs"]["classes"] == ["sick", "well"]
    assert schema["parity"]["max_abs_diff"] < 1e-5 and schema["parity"]["rtol"] == 1e-4
    session = ort.InferenceSession(str(dest / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.type for i in session.get_inputs()}
    assert inputs == {
        "patient_age": "tensor(float)",
        "clinic": "tensor(string)",
        "smoker": "tensor(float)",
        "visit": "tensor(float)",
        "notes": "tensor(string)",
    }


def test_predictor_takes_raw_rows_and_matches_scikit_learn(exported) -> None:
    dest, pipeline, prepared = exported
    predictor = Predictor(dest)
    rows = prepared.rows.slice(0, 30).to_pylist()
    answer = predictor.predict(rows)
    expected = pipeline.predict_proba(
        frame(predictor.model_schema.feeds(prepared.rows.slice(0, 30)))
    )
    got = np.array([a["probabilities"] for a in answer])
    assert np.abs(got - expected).max() < 1e-5
    inputs = predictor.inputs([{**ROW, "clinic": "east"}, {k: None for k in ROW}])
    # the log and drift keep every column but the text, categories as codes (unseen: last)
    assert inputs.unseen == Counter({"clinic": 1}) and inputs.x.shape == (2, 4)
    clinic = next(f for f in predictor.model_schema.features if f.name == "clinic")
    assert inputs.x[0, 1] == len(clinic.choices) and np.isnan(inputs.x[1]).all()
    assert [r["label"] for r in predictor.results(predictor.run_inputs(inputs))]  # answered
    with pytest.raises(InvalidInput, match="row 0: 'patient age' expected a number"):
        predictor.predict([{**ROW, "patient age": "old"}])
    with pytest.raises(InvalidInput, match="row 0: expected an object keyed by column name"):
        predictor.predict([[1.0, 2.0, 3.0, 4.0, 5.0]])


@pytest.mark.parametrize("algorithm", ["boosting", "linear", "forest", "mlp"])
def test_regressors_export_within_a_relative_tolerance(algorithm: str, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    columns = {n: data.data[:150, i] for i, n in enumerate(data.feature_names[:5])}
    table = pa.table({**columns, "price": data.target[:150] * 1000.0})  # values around 1e5
    prepared = prepare(table, "price")
    assert prepared.task.kind == "regression"
    pipeline = fit(prepared, estimator(algorithm, False, 0), scale=algorithm in ("linear", "mlp"))
    result = export_pipeline(
        pipeline, prepared.rows, tmp_path, prepared.features, task="regression"
    )
    assert result.schema["parity"]["max_rel_diff"] < 1e-4
    answer = Predictor(tmp_path).predict(table.slice(0, 3).to_pylist())
    assert set(answer[0]) == {"value"}
    expected = pipeline.predict(frame(ModelSchema.of(prepared.features).feeds(table.slice(0, 3))))
    assert np.allclose([a["value"] for a in answer], expected, rtol=1e-4)


def test_lightgbm_exports_on_a_float_matrix_too(tmp_path: Path) -> None:
    """The older format (one float32 input `x`): LightGBM through onnxmltools' converter."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    from reef.runtime.export import export_sklearn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    kw = {"n_estimators": 20, "verbose": -1, "n_jobs": 1}
    clf = export_sklearn(LGBMClassifier(**kw).fit(x, y), x, tmp_path / "c", list("abc"), ["n", "y"])
    assert clf.schema["parity"]["max_abs_diff"] < 1e-5
    reg = LGBMRegressor(**kw).fit(x, x[:, 0] * 1e5)
    result = export_sklearn(reg, x, tmp_path / "r", list("abc"))
    assert result.schema["parity"]["max_rel_diff"] < 1e-4
    assert Predictor(tmp_path / "r").predict(x[:2].tolist())[0].keys() == {"outputs"}


def test_many_categories_are_capped_at_the_listed_choices(tmp_path: Path) -> None:
    """A column of 300 categories one-hot encodes the 100 most frequent (and missing); the
    rest are all zeros, in scikit-learn and in the graph alike."""
    rng = np.random.default_rng(0)
    cities = [f"city {i}" for i in rng.integers(0, 300, 900)]
    table = pa.table({"x": rng.normal(size=900), "city": cities, "y": rng.choice(["a", "b"], 900)})
    prepared = prepare(table, "y")
    city = next(f for f in prepared.features if f.name == "city")
    assert len(city.choices) == 100 and city.more_choices
    pipeline = fit(prepared, estimator("linear", True, 0))
    assert pipeline[0].transform(frame(ModelSchema.of(prepared.features).feeds(table))).shape == (
        900,
        1 + 101,
    )
    result = export_pipeline(pipeline, table, tmp_path, prepared.features, task="classification")
    assert result.schema["parity"]["max_abs_diff"] < 1e-5
