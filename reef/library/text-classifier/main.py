"""text-classifier: TF-IDF of each text column (words weighted by how rare they are) and
logistic regression; the table's other columns go through the same preprocessing as in
tabular-learner. The work is in `reef.learners`."""

from __future__ import annotations

import pyarrow.parquet as pq

import reef
from reef.learners import estimator, prepare, train
from reef.tasks import TaskMismatch


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("train"))
    try:
        prepared = prepare(table, p["target"], "classification", p["exclude"], p["text_columns"])
    except TaskMismatch as e:
        raise SystemExit(f"text-classifier: {e.message}") from None
    if not any(f.role == "text" for f in prepared.features):
        raise SystemExit(
            "text-classifier: no column of free text among the features; name one in "
            "text_columns, or use tabular-learner"
        )
    model = estimator("linear", True, p["seed"])
    print(f"training TF-IDF + logistic regression on {table.num_rows} rows", flush=True)
    train(ctx, prepared, model, scale=True, task="text_classification")


if __name__ == "__main__":
    main()
