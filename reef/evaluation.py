"""Scoring an exported model on a test table: what the `evaluate` module logs.

A `ScoredModel` runs model.onnx with onnxruntime on a pyarrow table, for both schema
formats: the old one (one float32 input `x` whose columns are the listed features) and
format 2 (raw columns fed through `reef.model_io.ModelSchema.feeds`). On top of it:
classification scores (accuracy, macro F1, the confusion matrix, ROC and precision-recall
for two classes), regression scores (RMSE, MAE, R²) and permutation importance, which
shuffles one raw column at a time and measures how much the score drops.

Pure: a model directory and a table in, numbers out. scikit-learn's metrics are imported
inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

IMPORTANCE_RUNS = 1000  # model runs permutation importance may take (repeats x features)


class ScoredModel:
    """An exported model and what it predicts for a table of raw rows."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort

        from reef.model_io import ModelSchema

        self.schema = ModelSchema.load(model_dir)
        self.classes: list[str] | None = self.schema.classes
        self.session = ort.InferenceSession(
            str(Path(model_dir) / "model.onnx"), providers=["CPUExecutionProvider"]
        )

    @property
    def task(self) -> str:
        """classification or regression (text and image classifiers are classifiers)."""
        return "classification" if self.classes else "regression"

    @property
    def features(self) -> list[str]:
        """The columns of the test table the model reads."""
        return self.schema.names

    def missing(self, table: pa.Table) -> list[str]:
        return [f for f in self.features if f not in table.column_names]

    def outputs(self, table: pa.Table) -> np.ndarray:
        """float64 (rows, outputs): class probabilities, or the predicted numbers."""
        wanted = [self.schema.scores] if self.schema.raw_rows else None
        y = self.session.run(wanted, self._feeds(table))
        scores = np.asarray(y[0], dtype=np.float64).reshape(table.num_rows, -1)
        if self.schema.output_kind == "logits":
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def predict(self, table: pa.Table) -> np.ndarray:
        """Predicted labels (strings) of a classifier; predicted numbers of a regressor."""
        y = self.outputs(table)
        if self.classes is None:
            return y[:, 0]
        return np.asarray(self.classes, dtype=object)[y.argmax(axis=1)]

    def _feeds(self, table: pa.Table) -> dict[str, np.ndarray]:
        if self.schema.raw_rows:
            return self.schema.feeds(table.select(self.features))
        columns = [table.column(f).to_numpy(zero_copy_only=False) for f in self.features]
        x = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
        return {self.session.get_inputs()[0].name: x.astype(np.float32)}


def labels_of(table: pa.Table, label: str) -> list[str | None]:
    """The label column as strings (None where missing), as classes are named."""
    return [None if v is None else str(v) for v in table.column(label).to_pylist()]


def numbers_of(table: pa.Table, label: str) -> np.ndarray:
    """The label column as float64 (NaN where missing); refuses a non-numeric column."""
    column = table.column(label)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise ValueError(f"the label column {label!r} holds {column.type}, not numbers")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


# classification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Classification:
    metrics: dict[str, float]
    labels: list[str]  # the confusion matrix's order: the model's classes, then unknown ones
    matrix: np.ndarray  # rows = true label, columns = predicted label
    roc: tuple[list[float], list[float]] | None  # (false positive rate, true positive rate)
    pr: tuple[list[float], list[float]] | None  # (recall, precision)
    positive: str | None  # the class ROC and PR score (the second class)


def classify(
    truth: list[str], predicted: list[str], scores: np.ndarray, classes: list[str]
) -> Classification:
    """Scores of predicted labels against true ones; ROC and PR when there are two classes
    (`scores` holds the class probabilities in `classes` order)."""
    from sklearn import metrics

    labels = classes + sorted(set(truth) - set(classes))
    matrix = metrics.confusion_matrix(truth, predicted, labels=labels)
    found: dict[str, float] = {
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "macro_f1": float(metrics.f1_score(truth, predicted, average="macro", zero_division=0)),
        "evaluated_rows": len(truth),
    }
    roc = pr = positive = None
    hits = np.asarray(truth, dtype=object) == classes[-1]
    if len(classes) == 2 and 0 < hits.sum() < len(hits):  # both kinds of rows are needed
        positive, p = classes[1], scores[:, 1]
        fpr, tpr, _ = metrics.roc_curve(hits, p)
        precision, recall, _ = metrics.precision_recall_curve(hits, p)
        found["roc_auc"] = float(metrics.roc_auc_score(hits, p))
        found["average_precision"] = float(metrics.average_precision_score(hits, p))
        roc, pr = (fpr.tolist(), tpr.tolist()), (recall.tolist(), precision.tolist())
    return Classification(found, labels, matrix, roc, pr, positive)


# regression ----------------------------------------------------------------------------
def regress(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae and r2 of predicted numbers against true ones."""
    from sklearn import metrics

    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
        "mae": float(metrics.mean_absolute_error(truth, predicted)),
        "r2": float(metrics.r2_score(truth, predicted)) if len(truth) > 1 else float("nan"),
        "evaluated_rows": len(truth),
    }


# permutation importance ----------------------------------------------------------------
def score(model: ScoredModel, table: pa.Table, truth: Any) -> float:
    """Higher is better: a classifier's mean log-probability of the true class (minus the
    log loss: smoother than accuracy on a small test set), a regressor's R²."""
    if model.classes is not None:
        index = {c: i for i, c in enumerate(model.classes)}
        scores = model.outputs(table)
        known = np.array([t in index for t in truth])
        picked = [scores[i, index[t]] for i, t in enumerate(truth) if t in index]
        return float(np.mean(np.log(np.clip(picked, 1e-15, 1)))) if known.any() else 0.0
    predicted = model.predict(table)
    residual = np.sum((truth - predicted) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1 - residual / total) if total > 0 else 0.0


def permutation_importance(
    model: ScoredModel, table: pa.Table, truth: Any, repeats: int = 5, seed: int = 0
) -> list[dict[str, Any]]:
    """For each feature column: how much the score drops (mean and spread over `repeats`
    shuffles of that column alone), largest drop first. The repeats shrink for models with
    many features, to keep the model runs near IMPORTANCE_RUNS."""
    rng = np.random.default_rng(seed)
    base = score(model, table, truth)
    features = model.features
    repeats = max(1, min(repeats, IMPORTANCE_RUNS // max(len(features), 1)))
    found = []
    for name in features:
        index = table.column_names.index(name)
        column = table.column(name).combine_chunks()
        drops = []
        for _ in range(repeats):
            shuffled = column.take(rng.permutation(len(column)))
            drops.append(base - score(model, table.set_column(index, name, shuffled), truth))
        found.append(
            {"feature": name, "importance": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    return sorted(found, key=lambda f: -f["importance"])
