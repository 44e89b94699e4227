"""The built-in modules: manifests, the scikit-learn export, and two whole workflows (tabular
and images) run by a real `reef serve`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import wait_run
from reef.errors import InvalidInput
from reef.manifest import parse_manifest
from reef.runtime.export import ParityError, export_model, export_sklearn
from reef.runtime.serving import Predictor
from reef.settings import REPO_MODULES

BUILT_IN = {
    "split": "data-processor",
    "impute": "data-processor",
    "scale": "data-processor",
    "images-to-pixels": "data-processor",
    "mlp-classifier": "model",
    "gradient-boosting": "model",
    "tabular-learner": "model",
    "text-classifier": "model",
    "image-classifier": "model",
    "evaluate": "evaluator",
    "confusion-matrix": "visualization",
    "feature-histograms": "visualization",
}


# manifests ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_module_has_a_valid_manifest_entrypoint_and_readme(name: str) -> None:
    folder = REPO_MODULES / name
    manifest = parse_manifest((folder / "reef.toml").read_text())
    assert manifest.name == name and manifest.kind == BUILT_IN[name]
    assert (folder / manifest.entrypoint).is_file()
    assert name in (folder / "README.md").read_text()
    assert manifest.resolve_params({})  # every parameter has a default


def test_visualizations_declare_no_outputs() -> None:
    for name, kind in BUILT_IN.items():
        if kind == "visualization":
            assert parse_manifest((REPO_MODULES / name / "reef.toml").read_text()).outputs == {}


# export_sklearn -------------------------------------------------------------------------
def three_classes(rows: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    x = rng.normal(size=(rows, 4)) + y[:, None] * np.array([1.0, -1.0, 0.5, 0.0])
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def boosted():
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = three_classes()
    return GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y), x


def test_export_sklearn_writes_the_torch_layout_and_serves(boosted, tmp_path: Path) -> None:
    model, x = boosted
    result = export_sklearn(model, x, tmp_path, ["a", "b", "c", "d"], ["cat", "dog", "eel"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "schema.json"]
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert schema == result.schema
    assert schema["inputs"] == {"name": "x", "dtype": "float32", "features": ["a", "b", "c", "d"]}
    assert schema["outputs"] == {
        "name": "y",
        "dtype": "float32",
        "size": 3,
        "kind": "probabilities",
        "classes": ["cat", "dog", "eel"],
    }
    assert schema["producer"]["framework"] == "scikit-learn"
    assert result.max_abs_diff < 1e-5  # about 1e-7: float32 trees against float64 sums
    predictor = Predictor(tmp_path)
    answer = predictor.predict(x[:50].tolist())
    probabilities = np.array([a["probabilities"] for a in answer])
    assert np.abs(probabilities - model.predict_proba(x[:50])).max() < 1e-5
    assert [a["label"] for a in answer] == [["cat", "dog", "eel"][i] for i in model.predict(x[:50])]


def test_export_sklearn_onnx_has_one_input_and_one_output(boosted, tmp_path: Path) -> None:
    import onnxruntime as ort

    model, x = boosted
    export_sklearn(model, x, tmp_path, ["a", "b", "c", "d"], ["0", "1", "2"])
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape[1], out.name, out.shape[1]) == ("x", 4, "y", 3)
    assert session.run(None, {"x": x[:7]})[0].shape == (7, 3)


def test_export_sklearn_gives_the_same_bytes_twice(boosted, tmp_path: Path) -> None:
    model, x = boosted
    for name in ("one", "two"):
        export_sklearn(model, x, tmp_path / name, ["a", "b", "c", "d"], ["0", "1", "2"])
    assert (tmp_path / "one/model.onnx").read_bytes() == (tmp_path / "two/model.onnx").read_bytes()


def test_export_sklearn_refuses_a_drifting_model(boosted, tmp_path: Path) -> None:
    model, x = boosted
    honest = model.predict_proba
    model.predict_proba = lambda rows: honest(rows) + 0.01  # skl2onnx converts the fitted trees
    try:
        with pytest.raises(ParityError, match="differs from scikit-learn"):
            export_sklearn(model, x, tmp_path, ["a", "b", "c", "d"], ["0", "1", "2"])
    finally:
        del model.predict_proba
    assert not (tmp_path / "schema.json").exists()


def test_export_sklearn_names_a_model_skl2onnx_cannot_convert(tmp_path: Path) -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Custom(ClassifierMixin, BaseEstimator):
        def fit(self, x, y):
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, x):
            return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))

    x, y = three_classes(30)
    with pytest.raises(InvalidInput, match="skl2onnx cannot convert Custom"):
        export_sklearn(Custom().fit(x, y), x, tmp_path, list("abcd"), ["0", "1", "2"])


@pytest.mark.slow  # a torch export: several seconds
def test_export_model_dispatches_by_kind(boosted, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sklearn.linear_model import LinearRegression

    model, x = boosted
    assert export_model(model, x, tmp_path / "sk", list("abcd"), list("xyz")).max_abs_diff < 1e-5
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1))
    export_model(net, x, tmp_path / "torch", list("abcd"), list("xyz"))
    assert (tmp_path / "torch" / "model.pt").is_file()
    regression = LinearRegression().fit(x, x[:, 0] * 1e5)  # a regressor: one raw output
    result = export_model(regression, x, tmp_path / "reg", list("abcd"))
    assert result.schema["outputs"]["classes"] is None and result.schema["outputs"]["size"] == 1
    assert result.schema["parity"]["max_rel_diff"] < 1e-4  # the absolute diff is ~1e-2
    with pytest.raises(InvalidInput, match="cannot export a str"):
        export_model("not a model", x, tmp_path / "no", list("abcd"))


# end to end -----------------------------------------------------------------------------
def digits_csv(rows: int = 500, missing: float = 0.05, seed: int = 0) -> tuple[bytes, dict]:
    """Digits with some empty cells, as CSV; and the first rows without gaps (for predict)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data[:rows].copy(), digits.target[:rows]
    holes = np.random.default_rng(seed).random(x.shape) < missing
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*(f"px_{i}" for i in range(64)), "label"])
    for values, gaps, label in zip(x, holes, y, strict=True):
        writer.writerow([*("" if g else int(v) for v, g in zip(values, gaps, strict=True)), label])
    complete = [i for i in range(rows) if not holes[i].any()][:20]
    return out.getvalue().encode(), {"x": x[complete], "y": y[complete]}


TABULAR = [
    {"name": "impute", "module": "library/impute", "inputs": {"data": "dataset:digits"}},
    {"name": "scale", "module": "library/scale", "inputs": {"data": "impute.data"}},
    {"name": "split", "module": "library/split", "inputs": {"data": "scale.data"}},
    {
        "name": "train",
        "module": "library/gradient-boosting",
        "inputs": {"train": "split.train"},
        "params": {"n_estimators": 40},
        "register": "digits-gb",
    },
    {
        "name": "evaluate",
        "module": "library/evaluate",
        "inputs": {"model": "train.model", "test": "split.test"},
    },
    {
        "name": "confusion",
        "module": "library/confusion-matrix",
        "inputs": {"model": "train.model", "test": "split.test"},
    },
    {
        "name": "histograms",
        "module": "library/feature-histograms",
        "inputs": {"data": "impute.data"},
        "params": {"max_features": 8},
    },
]


def run_pipeline(client, project: str, steps: list[dict]) -> dict:
    resp = client.post(f"/api/projects/{project}/pipelines", json={"name": "p", "steps": steps})
    assert resp.status_code == 201, resp.text
    run = client.post(f"/api/projects/{project}/pipelines/p/runs", json={}).json()
    return wait_run(client, project, run["id"])


def artifact(client, project: str, state: dict, name: str) -> bytes:
    found = next(a for a in state["artifacts"] if a["name"] == name)
    resp = client.get(f"/api/projects/{project}/runs/{state['run']['id']}/artifacts/{found['id']}")
    assert resp.status_code == 200
    return resp.content


def scaled(rows: np.ndarray, scaling: dict) -> list[dict[str, float]]:
    """Rows as the model saw them: scaled with the centers and scales the step logged."""
    out = []
    for row in rows:
        named = {f"px_{i}": float(v) for i, v in enumerate(row)}
        for name, s in scaling["columns"].items():
            named[name] = (named[name] - s["center"]) / s["scale"]
        out.append(named)
    return out


@pytest.mark.slow
def test_tabular_workflow_impute_scale_boost_and_draw(shared_server) -> None:
    body, complete = digits_csv()
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "tab"}).raise_for_status()
        up = client.post(
            "/api/projects/tab/datasets",
            data={"name": "digits"},
            files={"file": ("digits.csv", body)},
        )
        assert up.status_code == 201, up.text
        state = run_pipeline(client, "tab", TABULAR)
        assert state["run"]["status"] == "succeeded", state["run"]["error"]
        assert state["metrics"]["accuracy"] >= 0.8
        assert state["metrics"]["filled_cells"] > 0
        assert state["metrics"]["onnx_parity_max_abs_diff"] <= 1e-4
        svg = artifact(client, "tab", state, "confusion_matrix.svg").decode()
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        page = artifact(client, "tab", state, "feature_histograms.html").decode()
        assert page.count("<svg") == 9
        assert not any(tag in page for tag in ("<script", "<link", "src=", "@import"))
        scaling = json.loads(artifact(client, "tab", state, "scaling.json"))
        rows = scaled(complete["x"], scaling)
        answer = client.post("/api/projects/tab/models/digits-gb/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        labels = [int(p["label"]) for p in answer.json()["predictions"]]
        assert sum(a == b for a, b in zip(labels, complete["y"], strict=True)) >= 16


def shape_png(kind: str, rng: np.random.Generator, size: int = 16) -> bytes:
    """A white square, circle or cross of random size and place on black, as PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(3, 6))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == "square":
        draw.rectangle(box, fill=255)
    elif kind == "circle":
        draw.ellipse(box, outline=255, width=2)
    else:
        draw.line(box, fill=255, width=2)
        draw.line([cx - r, cy + r, cx + r, cy - r], fill=255, width=2)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def shapes_parquet(rows: int = 60, seed: int = 0) -> bytes:
    """An image dataset (image, label, path, width, height) of three synthetic shapes."""
    rng = np.random.default_rng(seed)
    labels = [("square", "circle", "cross")[i % 3] for i in range(rows)]
    table = pa.table(
        {
            "image": pa.array([shape_png(k, rng) for k in labels], pa.binary()),
            "label": labels,
            "path": [f"{k}/{i}.png" for i, k in enumerate(labels)],
            "width": [16] * rows,
            "height": [16] * rows,
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


IMAGES = [
    {"name": "split", "module": "library/split", "inputs": {"data": "dataset:shapes"}},
    {
        "name": "train",
        "module": "library/image-classifier",
        "inputs": {"train": "split.train"},
        "params": {"image_size": 16, "epochs": 15, "batch_size": 16, "lr": 0.01},
    },
    {
        "name": "pixels",
        "module": "library/images-to-pixels",
        "inputs": {"data": "split.test"},
        "params": {"image_size": 16},
    },
    {
        "name": "evaluate",
        "module": "library/evaluate",
        "inputs": {"model": "train.model", "test": "pixels.data"},
    },
]


@pytest.mark.slow
def test_image_workflow_cnn_on_pixels(shared_server) -> None:
    with shared_server.client() as client:
        client.post("/api/projects", json={"name": "img"}).raise_for_status()
        up = client.post(
            "/api/projects/img/datasets",
            data={"name": "shapes"},
            files={"file": ("shapes.parquet", shapes_parquet())},
        )
        assert up.status_code == 201, up.text
        state = run_pipeline(client, "img", IMAGES)
        assert state["run"]["status"] == "succeeded", state["run"]["error"]
        assert state["metrics"]["evaluated_rows"] == 12
        assert state["metrics"]["accuracy"] >= 0.6  # about 0.9; three classes
