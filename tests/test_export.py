"""ONNX export with a parity check, and serving the export with onnxruntime."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from reef.errors import InvalidInput, NotFound, TooLarge
from reef.runtime.export import ExportResult, ParityError, export_torch
from reef.runtime.serving import Predictor

torch = pytest.importorskip("torch")

FEATURES = ["a", "b", "c", "d"]
CLASSES = ["cat", "dog", "eel"]


class TinyMLP(torch.nn.Module):
    """Standardize -> Linear -> ReLU -> Linear -> softmax, like the built-in classifier."""

    def __init__(self, n_in: int = 4, n_out: int = 3, softmax: bool = True) -> None:
        super().__init__()
        self.register_buffer("mean", torch.arange(n_in, dtype=torch.float32))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_in, 8), torch.nn.ReLU(), torch.nn.Linear(8, n_out)
        )
        self.softmax = softmax

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        y = self.net(inputs - self.mean)
        return torch.softmax(y, dim=-1) if self.softmax else y


class Drifting(TinyMLP):
    """Differs between eager torch and its export: eager adds 1 when not tracing."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        y = super().forward(inputs)
        return y if torch.compiler.is_compiling() else y + 1.0


def sample(rows: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyMLP, ExportResult]:
    torch.manual_seed(0)
    model = TinyMLP()
    dest = tmp_path_factory.mktemp("model")
    return model, export_torch(model, sample(), dest, FEATURES, CLASSES)


def test_export_writes_files_and_schema(exported: tuple[TinyMLP, ExportResult]) -> None:
    _, result = exported
    dest = result.onnx_path.parent
    assert result.onnx_path == dest / "model.onnx"
    assert sorted(p.name for p in dest.iterdir()) == ["model.onnx", "model.pt", "schema.json"]
    assert not list(dest.glob("*.data"))  # weights inside the .onnx file
    schema = json.loads((dest / "schema.json").read_text())
    assert schema == result.schema
    assert schema["inputs"] == {"name": "x", "dtype": "float32", "features": FEATURES}
    assert schema["outputs"]["name"] == "y"
    assert schema["outputs"]["classes"] == CLASSES
    assert schema["outputs"]["kind"] == "probabilities"
    assert schema["parity"]["max_abs_diff"] == result.max_abs_diff
    assert (schema["parity"]["atol"], schema["parity"]["rtol"]) == (1e-4, 1e-4)
    assert result.max_abs_diff < 1e-5


def test_onnx_model_has_named_dynamic_batch(exported: tuple[TinyMLP, ExportResult]) -> None:
    import onnxruntime as ort

    _, result = exported
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("x", "y")
    assert inp.shape[1] == 4 and not isinstance(inp.shape[0], int)
    for rows in (1, 7):
        assert session.run(None, {"x": sample(rows)})[0].shape == (rows, 3)


def test_export_is_byte_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = TinyMLP()
    a = export_torch(model, sample(1), tmp_path / "a", FEATURES, CLASSES)  # one row is enough
    b = export_torch(model, sample(1), tmp_path / "b", FEATURES, CLASSES)
    assert a.onnx_path.read_bytes() == b.onnx_path.read_bytes()
    assert model.training is True  # the caller's model is left as it was


def test_parity_error(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match=r"max abs diff 1 .*beyond atol 0\.0001 \+ rtol"):
        export_torch(Drifting(), sample(), tmp_path, FEATURES, CLASSES)
    assert not (tmp_path / "schema.json").exists()


@pytest.mark.parametrize(
    ("features", "classes", "rows", "message"),
    [
        (["a", "b"], CLASSES, sample(), "2 feature names for a sample of 4 features"),
        (["a", "a", "b", "c"], CLASSES, sample(), "feature names must be distinct"),
        (FEATURES, ["x", "y"], sample(), "2 class names for a model with 3 outputs"),
        (FEATURES, CLASSES, np.zeros((0, 4)), "at least one row"),
        (FEATURES, CLASSES, np.zeros(4), "2-D array"),
        (FEATURES, CLASSES, np.full((2, 4), np.nan), "NaN"),
    ],
)
def test_export_validation(
    tmp_path: Path, features: list, classes: list, rows: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        export_torch(TinyMLP(), rows, tmp_path, features, classes)


# --- serving ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(exported: tuple[TinyMLP, ExportResult]) -> Predictor:
    return Predictor(exported[1].onnx_path.parent)


def test_predict_matches_torch(
    predictor: Predictor, exported: tuple[TinyMLP, ExportResult]
) -> None:
    model, _ = exported
    x = sample(5, seed=3)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = predictor.predict(x.tolist())
    assert [g["label"] for g in got] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert np.allclose([g["probabilities"] for g in got], expected, atol=1e-5)
    by_name = predictor.predict([dict(zip(FEATURES, row, strict=True)) for row in x.tolist()])
    assert by_name == got


def test_predict_integers_and_tuples(predictor: Predictor) -> None:
    (result,) = predictor.predict([(1, 2, 3, 4)])
    assert result["label"] in CLASSES
    assert math.isclose(sum(result["probabilities"]), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "rows is empty"),
        ({"a": 1}, "rows must be a list, got dict"),
        ("1,2,3,4", "rows must be a list, got str"),
        (
            [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1] * 12],
            "row 3 has 12 values; the model expects 4 features",
        ),
        ([5], "row 0 must be a list of numbers or an object keyed by feature name, got int"),
        ([[1, 2, "x", 4]], "row 0, feature 'c': expected a number, got 'x'"),
        ([[1, 2, None, 4]], "row 0, feature 'c': expected a number, got None"),
        ([[1, True, 3, 4]], "row 0, feature 'b': expected a number, got True"),
        ([[1, 2, 3, float("nan")]], "row 0, feature 'd': nan is not a finite"),
        ([[1, 2, 3, float("inf")]], "feature 'd': inf is not a finite"),
        ([[1, 2, 3, 1e300]], "feature 'd': 1e+300 is not a finite float32"),
        ([[1, 2, 3, 10**400]], "feature 'd'"),
        ([{"a": 1, "b": 2, "c": 3}], "row 0: missing features 'd'"),
        (
            [{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}],
            "row 0: unknown features 'e', 'f'",
        ),
        ([{"a": 1, "b": 2, "zz": 3}], "missing features 'c', 'd'; unknown features 'zz'"),
    ],
)
def test_predict_validation(predictor: Predictor, rows: object, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        predictor.predict(rows)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_predict_row_limit(exported: tuple[TinyMLP, ExportResult]) -> None:
    small = Predictor(exported[1].onnx_path.parent, max_rows=2)
    with pytest.raises(TooLarge, match="3 rows in one request; the limit is 2"):
        small.predict([[0, 0, 0, 0]] * 3)


def test_predictor_needs_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"no model\.onnx"):
        Predictor(tmp_path)


def test_concurrent_predict(predictor: Predictor) -> None:
    x = sample(64, seed=5).tolist()
    expected = predictor.predict(x)
    results: list[list] = []

    def work() -> None:
        for _ in range(20):
            results.append(predictor.predict(x))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    assert all(r == expected for r in results)


def test_regression_model_and_logits(tmp_path: Path) -> None:
    torch.manual_seed(2)
    raw = TinyMLP(n_out=2, softmax=False)
    export_torch(raw, sample(), tmp_path / "raw", FEATURES)
    (out,) = Predictor(tmp_path / "raw").predict([[0, 1, 2, 3]])
    assert set(out) == {"outputs"} and len(out["outputs"]) == 2
    export_torch(raw, sample(), tmp_path / "logits", FEATURES, ["n", "y"], output_kind="logits")
    (res,) = Predictor(tmp_path / "logits").predict([[0, 1, 2, 3]])
    assert math.isclose(sum(res["probabilities"]), 1.0, rel_tol=1e-6)
    assert res["label"] == ["n", "y"][int(np.argmax(out["outputs"]))]
