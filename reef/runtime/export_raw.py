"""Export a scikit-learn Pipeline (preprocessing + estimator) that takes raw rows: one ONNX
graph with one named input per column, and schema.json format 2 (reef.model_io).

The estimator may be any scikit-learn classifier or regressor skl2onnx converts, or a
LightGBM one (its onnxmltools converter is registered here). Parity with scikit-learn is
checked on the sample rows plus a row with every value missing, with a relative tolerance
(`|onnx - ref| <= atol + rtol * |ref|`, see export.parity).

Pure: a model and a Table in, files and numbers out; sklearn, skl2onnx and onnxmltools are
imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from reef.model_io import FORMAT, Feature, ModelSchema
from reef.runtime.export import (
    ATOL,
    PARITY_ROWS,
    RTOL,
    ExportResult,
    check_parity,
    parity,
    sklearn_to_onnx,
)


def export_pipeline(
    model: Any,
    sample: pa.Table,
    dest_dir: Path,
    features: Sequence[Feature],
    *,
    task: str,
    target: str | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> ExportResult:
    """Write model.onnx and schema.json (format 2) for a fitted Pipeline whose first step
    reads the DataFrame `reef.preprocess.frame` builds; check parity on `sample`'s rows."""
    from reef.preprocess import frame

    classifier = callable(getattr(model, "predict_proba", None))
    schema = _schema(features, task, target, model, classifier)
    feeds = _with_missing_row(ModelSchema(schema).feeds(sample.slice(0, PARITY_ROWS)))
    x = frame(feeds)
    if classifier:
        expected = np.asarray(model.predict_proba(x), dtype=np.float64)
    else:
        expected = np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = dest_dir / "model.onnx"
    _to_onnx(model, features, classifier, expected.shape[1], onnx_path)
    got = _run(onnx_path, feeds)
    checked = parity(expected, got, rtol, atol)
    check_parity(checked, schema["producer"]["estimator"], len(x))
    schema["parity"] = {k: v for k, v in checked.items() if k != "ok"}
    (dest_dir / "schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    return ExportResult(schema["parity"]["max_abs_diff"], onnx_path, schema)


def _schema(
    features: Sequence[Feature], task: str, target: str | None, model: Any, classifier: bool
) -> dict[str, Any]:
    import sklearn

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    classes = [_class_name(c) for c in model.classes_] if classifier else None
    return {
        "format": FORMAT,
        "task": task,
        "target": target,
        "inputs": {"features": [f.to_dict() for f in features]},
        "outputs": {
            "kind": "probabilities" if classifier else "raw",
            "classes": classes,
            "label": None,
            "scores": "y",
        },
        "producer": {
            "framework": "scikit-learn",
            "version": sklearn.__version__,
            "estimator": type(final).__name__,
        },
    }


def _class_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _with_missing_row(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`feeds` plus one row with every value missing (NaN, ""), so parity covers imputation."""
    out = {}
    for name, values in feeds.items():
        blank = np.array([[np.nan if values.dtype != object else ""]], dtype=values.dtype)
        out[name] = np.concatenate([values, blank])
    return out


def _to_onnx(
    model: Any, features: Sequence[Feature], classifier: bool, n_out: int, path: Path
) -> None:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [
        (
            f.input,
            FloatTensorType([None, 1]) if f.dtype == "float32" else StringTensorType([None, 1]),
        )
        for f in features
    ]
    scores = "probabilities" if classifier else "variable"
    sklearn_to_onnx(model, types, _options(model, classifier), scores, n_out, path)


def _options(model: Any, classifier: bool) -> dict[int, dict[str, Any]]:
    """zipmap off for the classifier; the "C" locale for every TF-IDF (STACK_NOTES: the
    default asks for en_US.UTF-8, which many machines lack)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    options: dict[int, dict[str, Any]] = {}
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if classifier:
        options[id(final)] = {"zipmap": False}
    for step in _walk(model):
        if isinstance(step, TfidfVectorizer):
            options[id(step)] = {"locale": "C"}
    return options


def _walk(obj: Any) -> list[Any]:
    """Every estimator inside a Pipeline / ColumnTransformer, depth first."""
    found = [obj]
    for _, child, *_ in getattr(obj, "steps", []) + list(getattr(obj, "transformers_", [])):
        if not isinstance(child, str):
            found += _walk(child)
    return found


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], feeds)[0], dtype=np.float64).reshape(
        len(next(iter(feeds.values()))), -1
    )
