"""Export a model to ONNX and prove the export computes what the model computes.

torch modules go through `export_torch`, scikit-learn classifiers through `export_sklearn`;
`export_model` picks one. Both write the same layout: model.onnx (input `x`, float32
(batch, features); output `y`, float32 (batch, outputs)) and schema.json.

Pure: arrays and a model in, files and numbers out. torch, scikit-learn and skl2onnx are
imported inside the functions so that importing this module (and serving) stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reef.errors import InvalidInput

PARITY_ROWS = 256
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # LightGBM's converter needs ai.onnx.ml 3
RTOL = 1e-4  # parity: |onnx - reference| <= ATOL + RTOL * |reference|, elementwise
ATOL = 1e-5
OUTPUT_KINDS = ("probabilities", "logits", "raw")
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript")


class ParityError(InvalidInput):
    """onnxruntime and torch disagree on the sample by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """What `export_torch` wrote and how close the ONNX model is to torch."""

    max_abs_diff: float
    onnx_path: Path
    schema: dict[str, Any]


def export_torch(
    model: Any,
    sample: np.ndarray,
    dest_dir: Path,
    feature_names: list[str],
    class_names: list[str] | None = None,
    tolerance: float = 1e-4,
    output_kind: str | None = None,
) -> ExportResult:
    """Write model.onnx, model.pt and schema.json into `dest_dir`; check parity on `sample`.

    The model takes one float32 tensor `x` of shape (batch, features) and returns one tensor
    `y` of shape (batch, outputs). `output_kind` says what `y` holds ("probabilities" by
    default when `class_names` are given, else "raw"); serving applies softmax to "logits".
    Raises ParityError when onnxruntime and torch differ by more than `tolerance`.
    """
    import torch

    x = _check_sample(sample, feature_names)
    kind = _check_output_kind(output_kind, class_names)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = dest_dir / "model.onnx"
    model = copy.deepcopy(model).cpu().eval()  # leave the caller's model (device, mode) alone
    expected = _torch_outputs(model, x[:PARITY_ROWS])
    _check_classes(expected, class_names)
    _export_onnx(model, x, onnx_path)
    producer = {"framework": "torch", "version": torch.__version__}
    result = _check_and_describe(
        onnx_path, x, expected, feature_names, class_names, kind, tolerance, producer
    )
    torch.save(model.state_dict(), dest_dir / "model.pt")
    return result


def export_sklearn(
    model: Any,
    sample: np.ndarray,
    dest_dir: Path,
    feature_names: list[str],
    class_names: list[str] | None = None,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Write model.onnx and schema.json for a fitted scikit-learn classifier or regressor (or
    a Pipeline ending in one); check `predict_proba` (or `predict`) against onnxruntime.

    The ONNX model has the same interface as `export_torch`'s: `x` float32 (batch, features)
    in, `y` float32 (batch, classes) = the probabilities out, in the order of the model's
    `classes_` (which `class_names` name), or (batch, 1) predictions for a regressor.
    Raises ParityError beyond `tolerance` (the atol; see `parity`).
    """
    import sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = callable(getattr(model, "predict_proba", None))
    if not classifier and not callable(getattr(model, "predict", None)):
        raise InvalidInput(f"{type(model).__name__} has neither predict_proba nor predict")
    x = _check_sample(sample, feature_names)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = dest_dir / "model.onnx"
    head = x[:PARITY_ROWS]
    if classifier:
        expected = np.asarray(model.predict_proba(head), dtype=np.float32)
    else:
        expected = np.asarray(model.predict(head), dtype=np.float32).reshape(len(head), -1)
    _check_classes(expected, class_names if classifier else None)
    types = [("x", FloatTensorType([None, x.shape[1]]))]
    options = {"zipmap": False} if classifier else {}
    scores = "probabilities" if classifier else "variable"
    sklearn_to_onnx(model, types, options, scores, expected.shape[1], onnx_path)
    producer = {
        "framework": "scikit-learn",
        "version": sklearn.__version__,
        "estimator": type(model).__name__,
    }
    classes = class_names if classifier else None
    kind = "probabilities" if classes else "raw"
    return _check_and_describe(
        onnx_path, x, expected, feature_names, classes, kind, tolerance, producer
    )


def _check_and_describe(
    onnx_path: Path,
    x: np.ndarray,
    expected: np.ndarray,
    feature_names: list[str],
    class_names: list[str] | None,
    kind: str,
    tolerance: float,
    producer: dict[str, Any],
) -> ExportResult:
    """Compare onnxruntime with the original's `expected` outputs (ParityError beyond the
    tolerance), then write schema.json beside the model."""
    got = _onnx_outputs(onnx_path, x[:PARITY_ROWS])
    checked = parity(expected, got, RTOL, tolerance)
    schema = _schema(feature_names, class_names, kind, expected.shape[1], checked, producer)
    check_parity(checked, producer["framework"], min(len(x), PARITY_ROWS))
    (onnx_path.parent / "schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    return ExportResult(checked["max_abs_diff"], onnx_path, schema)


def export_model(
    model: Any,
    sample: np.ndarray,
    dest_dir: Path,
    feature_names: list[str],
    class_names: list[str] | None = None,
    tolerance: float = 1e-4,
) -> ExportResult:
    """`export_torch` for a torch nn.Module, `export_sklearn` for a scikit-learn (or
    LightGBM) classifier or regressor; InvalidInput for anything else."""
    torch = sys.modules.get("torch")  # a torch module exists only if torch was imported
    if torch is not None and isinstance(model, torch.nn.Module):
        return export_torch(model, sample, dest_dir, feature_names, class_names, tolerance)
    if callable(getattr(model, "predict_proba", None)) or callable(getattr(model, "predict", None)):
        return export_sklearn(model, sample, dest_dir, feature_names, class_names, tolerance)
    raise InvalidInput(
        f"cannot export a {type(model).__name__}: expected a torch nn.Module or a "
        "scikit-learn classifier or regressor"
    )


def sklearn_to_onnx(
    model: Any, types: list[tuple[str, Any]], options: dict, scores: str, n_out: int, path: Path
) -> None:
    """skl2onnx (LightGBM estimators included), keeping only the output `scores` renamed
    `y` (batch, n_out); every input gets a dynamic batch axis."""
    import onnx
    from skl2onnx import convert_sklearn

    register_lightgbm()
    try:
        with quiet():
            proto = convert_sklearn(
                model, initial_types=types, options=options, target_opset=TARGET_OPSET
            )
    except Exception as e:  # skl2onnx raises many kinds, some with megabytes of message
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise InvalidInput(f"skl2onnx cannot convert {type(model).__name__}: {reason}") from e
    outputs = [o.name for o in proto.graph.output]
    if scores not in outputs:
        raise InvalidInput(f"skl2onnx gave no {scores!r} output (outputs: {outputs})")
    graph = proto.graph
    graph.node.append(onnx.helper.make_node("Identity", [scores], ["y"], name="y"))
    del graph.output[:]
    graph.output.append(
        onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", n_out])
    )
    for tensor in graph.input:
        tensor.type.tensor_type.shape.dim[0].dim_param = "batch"
    graph.name = "main_graph"  # skl2onnx names it with a random UUID: same model, same bytes
    prune(graph)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def register_lightgbm() -> None:
    """Teach skl2onnx LightGBM's estimators (onnxmltools' converters), so that one inside a
    Pipeline shares the preprocessing's graph (STACK_NOTES: needs TARGET_OPSET)."""
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
    except ImportError:
        return
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )


def prune(graph: Any) -> None:
    """Drop the nodes and initializers that no graph output depends on (the label branch)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def parity(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> dict[str, Any]:
    """How close the ONNX outputs `got` are to the original's `expected`: the largest
    absolute and relative differences, the tolerance, and whether every element is within
    `atol + rtol * |expected|` (a fixed absolute tolerance fails a correct regressor whose
    targets are around 1e5, where float32 alone differs by 1e-2)."""
    a, b = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    if a.shape != b.shape:
        raise ParityError(f"ONNX output shape {b.shape} differs from the original's {a.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ParityError("the model produced NaN or infinite outputs on the sample")
    diff = np.abs(a - b)
    rel = np.where(np.abs(a) > atol, diff / np.maximum(np.abs(a), atol), 0.0)  # beside ~0
    return {
        "max_abs_diff": float(diff.max(initial=0.0)),
        "max_rel_diff": float(rel.max(initial=0.0)),
        "rtol": rtol,
        "atol": atol,
        "ok": bool((diff <= atol + rtol * np.abs(a)).all()),
    }


def check_parity(checked: dict[str, Any], framework: str, rows: int) -> None:
    """ParityError unless `parity` found every element within tolerance."""
    if not checked["ok"]:
        raise ParityError(
            f"ONNX export differs from {framework} on {rows} sample rows: max abs diff "
            f"{checked['max_abs_diff']:.3g} (max rel diff {checked['max_rel_diff']:.3g}) "
            f"beyond atol {checked['atol']:.3g} + rtol {checked['rtol']:.3g} x |reference|"
        )


def _check_sample(sample: np.ndarray, feature_names: list[str]) -> np.ndarray:
    x = np.asarray(sample)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidInput(f"sample must be a 2-D array with at least one row, got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InvalidInput(f"sample must be numeric, got dtype {x.dtype}")
    if len(feature_names) != x.shape[1]:
        raise InvalidInput(
            f"{len(feature_names)} feature names for a sample of {x.shape[1]} features"
        )
    if len(set(feature_names)) != len(feature_names):
        raise InvalidInput("feature names must be distinct")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InvalidInput("sample holds NaN or infinite values")
    return x


def _check_output_kind(kind: str | None, class_names: list[str] | None) -> str:
    kind = kind or ("probabilities" if class_names else "raw")
    if kind not in OUTPUT_KINDS:
        raise InvalidInput(f"output_kind must be one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
    return kind


def _check_classes(outputs: np.ndarray, class_names: list[str] | None) -> None:
    if outputs.ndim != 2:
        raise InvalidInput(f"the model must return (batch, outputs), got shape {outputs.shape}")
    if class_names is not None and len(class_names) != outputs.shape[1]:
        raise InvalidInput(
            f"{len(class_names)} class names for a model with {outputs.shape[1]} outputs"
        )


def _export_onnx(model: Any, x: np.ndarray, path: Path) -> None:
    """torch.onnx.export (dynamo) with a dynamic batch axis, weights inside the file."""
    import torch

    # torch.export specializes a batch of 1; export with at least two rows.
    rows = x if len(x) >= 2 else np.repeat(x, 2, axis=0)
    example = torch.from_numpy(rows[:PARITY_ROWS].copy())
    with quiet():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    _strip_metadata(path)


def _strip_metadata(path: Path) -> None:
    """Drop the exporter's debug metadata (stack traces hold local paths), so that the same
    weights always give the same bytes."""
    import onnx

    proto = onnx.load(str(path))
    for node in proto.graph.node:
        del node.metadata_props[:]
    del proto.graph.metadata_props[:]
    onnx.save(proto, str(path))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporter's warnings and info logs for one call (process-wide while it runs)."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _torch_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = model(torch.from_numpy(x.copy()))
    if isinstance(y, tuple | list):
        raise InvalidInput("the model must return a single tensor")
    return y.detach().cpu().numpy().astype(np.float32)


def _onnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _schema(
    features: list[str],
    classes: list[str] | None,
    kind: str,
    n_outputs: int,
    checked: dict[str, Any],
    producer: dict[str, Any],
) -> dict[str, Any]:
    return {
        "inputs": {"name": "x", "dtype": "float32", "features": list(features)},
        "outputs": {
            "name": "y",
            "dtype": "float32",
            "size": n_outputs,
            "kind": kind,
            "classes": [str(c) for c in classes] if classes is not None else None,
        },
        "parity": {k: v for k, v in checked.items() if k != "ok"},
        "producer": producer,
    }
