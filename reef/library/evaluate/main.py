"""evaluate: score an exported model on a test table with onnxruntime, for classifiers and
regressors alike (the model's schema says which), and draw the results.

Classification: accuracy, macro F1, a confusion matrix (picture and JSON), and for two
classes ROC and precision-recall curves with their areas. Regression: rmse, mae, r2 and a
predicted-vs-actual picture. Both: permutation feature importance (picture and JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef
from reef import charts, evaluation
from reef.sdk import StepContext

TOP_FEATURES = 20  # features the importance picture shows


def read_test(model: evaluation.ScoredModel, path: Path, label: str) -> pa.Table:
    """The test rows that have a label; exits naming missing columns."""
    table = pq.read_table(path)
    missing = model.missing(table) + ([label] if label not in table.column_names else [])
    if missing:
        raise SystemExit(f"evaluate: the test set lacks columns {missing[:10]}")
    labelled = table.filter(table.column(label).is_valid())
    if labelled.num_rows < table.num_rows:
        print(f"left out {table.num_rows - labelled.num_rows} rows without a label", flush=True)
    if labelled.num_rows == 0:
        raise SystemExit(f"evaluate: no test row has a value in {label!r}")
    return labelled


def write(ctx: StepContext, name: str, text: str) -> None:
    path = Path(name)
    path.write_text(text)
    ctx.log_artifact(path)


def classification(ctx: StepContext, model: evaluation.ScoredModel, table: pa.Table) -> Any:
    """Log a classifier's scores and pictures; returns the truth for the importance."""
    truth = evaluation.labels_of(table, ctx.params["label"])
    scores = model.outputs(table)
    predicted = [model.classes[i] for i in scores.argmax(axis=1)]
    found = evaluation.classify(truth, predicted, scores, model.classes)
    ctx.log_metrics(found.metrics)
    print(", ".join(f"{k} {v:.4g}" for k, v in found.metrics.items()), flush=True)
    report = {"labels": found.labels, "rows": "true", "columns": "predicted"}
    write(ctx, "confusion_matrix.json", json.dumps({**report, "matrix": found.matrix.tolist()}))
    write(ctx, "confusion_matrix.svg", charts.confusion_matrix(found.labels, found.matrix))
    if found.roc is not None and found.pr is not None:
        auc, ap = found.metrics["roc_auc"], found.metrics["average_precision"]
        title = f"ROC curve for '{found.positive}': area {auc:.3f}"
        note = "1.0 ranks every positive first; the dashed line is a coin toss (0.5)"
        xlabel = "false positive rate (share of negatives flagged)"
        ylabel = "true positive rate (recall)"
        write(
            ctx,
            "roc_curve.svg",
            charts.curve(title, *found.roc, xlabel, ylabel, diagonal=True, note=note),
        )
        title = f"Precision-recall for '{found.positive}': average precision {ap:.3f}"
        note = "precision: share of flagged rows that are right; recall: share found"
        write(ctx, "pr_curve.svg", charts.curve(title, *found.pr, "recall", "precision", note=note))
    return truth


def regression(ctx: StepContext, model: evaluation.ScoredModel, table: pa.Table) -> Any:
    """Log a regressor's scores and the predicted-vs-actual picture; returns the truth."""
    try:
        truth = evaluation.numbers_of(table, ctx.params["label"])
    except ValueError as e:
        raise SystemExit(f"evaluate: {e}; the model predicts numbers") from None
    predicted = model.predict(table)
    found = evaluation.regress(truth, predicted)
    ctx.log_metrics(found)
    print(", ".join(f"{k} {v:.4g}" for k, v in found.items()), flush=True)
    write(ctx, "predicted_vs_actual.svg", charts.predicted_vs_actual(truth, predicted))
    return truth


def importance(ctx: StepContext, model: evaluation.ScoredModel, table: pa.Table, truth: Any):
    found = evaluation.permutation_importance(model, table, truth)
    write(
        ctx,
        "feature_importance.json",
        json.dumps(
            {
                "method": "permutation",
                "score": "log_loss" if model.classes else "r2",
                "features": found,
            },
            indent=1,
        ),
    )
    top = found[:TOP_FEATURES]
    metric = "log loss (confidence in the right class)" if model.classes else "R²"
    note = f"how much worse the {metric} gets when the column is shuffled between rows"
    write(
        ctx,
        "feature_importance.svg",
        charts.bars(
            f"Which columns mattered: top {len(top)} of {len(found)}",
            [f["feature"] for f in top],
            [f["importance"] for f in top],
            note,
        ),
    )


def main() -> None:
    ctx = reef.step()
    model = evaluation.ScoredModel(ctx.input_path("model"))
    table = read_test(model, ctx.input_path("test"), ctx.params["label"])
    print(f"evaluating a {model.task} model on {table.num_rows} rows", flush=True)
    if model.task == "classification":
        truth = classification(ctx, model, table)
    else:
        truth = regression(ctx, model, table)
    importance(ctx, model, table, truth)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
