"""confusion-matrix: run an ONNX classifier on a test table; draw the confusion matrix as SVG.

The SVG is drawn by `reef.charts` (no plotting library): rows are the true labels, columns
the predicted ones, each cell shows its count and is shaded by its share of the row.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

import reef
from reef import charts, evaluation


def main() -> None:
    ctx = reef.step()
    label = ctx.params["label"]
    model = evaluation.ScoredModel(ctx.input_path("model"))
    if model.classes is None:
        raise SystemExit("confusion-matrix: the model's schema.json lists no classes")
    table = pq.read_table(ctx.input_path("test"))
    missing = model.missing(table) + ([label] if label not in table.column_names else [])
    if missing:
        raise SystemExit(f"confusion-matrix: the test set lacks columns {missing[:10]}")
    table = table.filter(table.column(label).is_valid())
    truth = evaluation.labels_of(table, label)
    scores = model.outputs(table)
    predicted = [model.classes[i] for i in scores.argmax(axis=1)]
    found = evaluation.classify(truth, predicted, scores, model.classes)
    path = Path("confusion_matrix.svg")
    path.write_text(charts.confusion_matrix(found.labels, found.matrix))
    ctx.log_artifact(path)
    print(f"drew a {len(found.labels)}x{len(found.labels)} confusion matrix of {len(truth)} rows")


if __name__ == "__main__":
    main()
