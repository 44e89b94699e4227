"""gradient-boosting: scikit-learn's GradientBoostingClassifier, exported to ONNX by reef.

The exported model takes the raw features and returns class probabilities (skl2onnx, without
ZipMap), so `evaluate` and the predict API use it like any other reef model.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import GradientBoostingClassifier

import reef
from reef.sdk import StepContext


def features_and_labels(
    table: pa.Table, label: str
) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Float32 features (numeric columns but the label, in column order), label indices,
    feature names and class names (sorted unique label values, as strings)."""
    if label not in table.column_names:
        raise SystemExit(f"gradient-boosting: no label column {label!r} in the training set")
    names = [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    if not names:
        raise SystemExit("gradient-boosting: the table has no numeric feature columns")
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise SystemExit(
            "gradient-boosting: features hold missing, NaN or infinite values (add an impute step)"
        )
    values = table.column(label).to_pylist()
    if any(v is None for v in values):
        raise SystemExit(f"gradient-boosting: label column {label!r} has missing values")
    classes = sorted(set(values))
    if len(classes) < 2:
        raise SystemExit(f"gradient-boosting: label column {label!r} holds only one class")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in values], dtype=np.int64)
    return x, names, y, [str(c) for c in classes]


def fit(x: np.ndarray, y: np.ndarray, p: dict) -> GradientBoostingClassifier:
    """Fit the classifier on the label indices 0..k-1, so that its probability columns
    follow the sorted class names."""
    model = GradientBoostingClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        learning_rate=p["learning_rate"],
        random_state=p["seed"],
    )
    return model.fit(x, y)


def log_training(
    ctx: StepContext, model: GradientBoostingClassifier, x: np.ndarray, y: np.ndarray
) -> None:
    """The training loss per stage (`loss`, step = stage) and the final train accuracy."""
    for stage, loss in enumerate(model.train_score_, start=1):
        ctx.log_metrics({"loss": float(loss)}, step=stage)
    accuracy = float((model.predict(x) == y).mean())
    ctx.log_metrics({"train_accuracy": accuracy})
    print(f"final loss {model.train_score_[-1]:.4f}, train accuracy {accuracy:.4f}")


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    x, names, y, classes = features_and_labels(pq.read_table(ctx.input_path("train")), p["label"])
    ctx.log_params({"n_features": len(names), "n_classes": len(classes), "n_rows": len(x)})
    print(
        f"training {p['n_estimators']} stages on {len(x)} rows, {len(names)} features, "
        f"{len(classes)} classes",
        flush=True,
    )
    started = time.monotonic()
    model = fit(x, y, p)
    print(f"trained in {time.monotonic() - started:.1f} s", flush=True)
    log_training(ctx, model, x, y)
    diff = ctx.save_model(model, x[:256], names, classes, output="model")
    print(f"exported to ONNX; parity max abs diff {diff:.2e}", flush=True)


if __name__ == "__main__":
    main()
