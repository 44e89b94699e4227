"""One-line explanations of the metrics reef's modules log, for hover titles on any page.

`explain("accuracy")` gives the sentence; a key with a step prefix ("evaluate/accuracy")
or a system metric ("system/cpu_percent") is explained by its last part. Unknown keys give
"" so a template can always write `title="{{ key | metric_help }}"`.
"""

from __future__ import annotations

HELP: dict[str, str] = {
    "accuracy": "Share of test rows whose predicted class is the true one (1.0 = all right).",
    "macro_f1": "F1 score averaged over the classes with equal weight: low when any class, "
    "even a rare one, is often missed or wrongly flagged (1.0 = perfect).",
    "roc_auc": "Area under the ROC curve: the chance that a random positive row gets a "
    "higher score than a random negative one (1.0 = perfect ranking, 0.5 = coin toss).",
    "average_precision": "Area under the precision-recall curve: how precise the model "
    "stays as it finds more of the positive rows (1.0 = perfect).",
    "rmse": "Root mean squared error: the typical size of a prediction's error, in the "
    "target's unit; large errors weigh more (0 = perfect).",
    "mae": "Mean absolute error: the average size of a prediction's error, in the target's "
    "unit (0 = perfect).",
    "r2": "R²: share of the target's variation the model explains (1.0 = perfect, 0 = no "
    "better than always predicting the average, below 0 = worse).",
    "evaluated_rows": "Number of held-out test rows the scores were computed on.",
    "loss": "The training objective the model minimises; lower is better. Compare it "
    "between epochs of one run, not between different models.",
    "val_loss": "The training objective on held-out rows; rising while loss falls means "
    "the model is memorising the training rows.",
    "train_accuracy": "Accuracy on the rows the model was trained on; much higher than the "
    "test accuracy means it memorised them.",
    "onnx_parity_max_abs_diff": "Largest difference between the exported (served) model's "
    "outputs and the original's on sample rows: a check that the export is faithful.",
    "filled_cells": "Number of empty cells the impute step filled in.",
    "cpu_percent": "How busy the processor was (100 = one core fully used).",
    "memory_mb": "Memory the step used, in megabytes.",
}


def explain(key: str) -> str:
    """The one-line explanation of metric `key`, or "" when reef does not know it."""
    return HELP.get(key) or HELP.get(key.rsplit("/", 1)[-1], "")
