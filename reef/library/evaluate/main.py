"""evaluate: run an ONNX classifier on a test table with onnxruntime and score it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq

import reef


def load_model(model_dir: Path) -> tuple[ort.InferenceSession, dict]:
    """The onnxruntime session (CPU) and the schema of an exported model."""
    schema = json.loads((model_dir / "schema.json").read_text())
    if not schema.get("outputs", {}).get("classes"):
        raise SystemExit("evaluate: the model's schema.json lists no classes; not a classifier")
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session, schema


def read_test(path: Path, features: list[str], label: str) -> tuple[np.ndarray, list[str]]:
    """Features in the model's order and the labels as strings."""
    table = pq.read_table(path)
    missing = [f for f in [*features, label] if f not in table.column_names]
    if missing:
        raise SystemExit(f"evaluate: the test set lacks columns {missing}")
    x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False) for f in features])
    labels = table.column(label).to_pylist()
    return x.astype(np.float32), ["" if v is None else str(v) for v in labels]


def confusion(truth: list[str], predicted: list[str], labels: list[str]) -> np.ndarray:
    """Counts with rows = true label, columns = predicted label, in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in predicted]), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the labels that occur in the truth or the predictions."""
    tp = np.diag(matrix).astype(np.float64)
    true_count, pred_count = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (true_count + pred_count) > 0
    denominator = true_count + pred_count
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def main() -> None:
    ctx = reef.step()
    session, schema = load_model(ctx.input_path("model"))
    classes = [str(c) for c in schema["outputs"]["classes"]]
    x, truth = read_test(ctx.input_path("test"), schema["inputs"]["features"], ctx.params["label"])
    outputs = session.run(None, {session.get_inputs()[0].name: x})[0]
    predicted = [classes[i] for i in np.asarray(outputs).argmax(axis=1)]
    labels = classes + sorted(set(truth) - set(classes))
    matrix = confusion(truth, predicted, labels)
    accuracy = float(np.trace(matrix) / max(len(truth), 1))
    f1 = macro_f1(matrix)
    ctx.log_metrics({"accuracy": accuracy, "macro_f1": f1, "evaluated_rows": len(truth)})
    print(f"{len(truth)} rows: accuracy {accuracy:.4f}, macro F1 {f1:.4f}", flush=True)
    report = {"labels": labels, "rows": "true", "columns": "predicted", "matrix": matrix.tolist()}
    path = Path("confusion_matrix.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    ctx.log_artifact(path)


if __name__ == "__main__":
    main()
