"""tabular-learner: a classifier or regressor over every kind of column, with its
preprocessing (imputation, one-hot encoding, scaling, TF-IDF) inside the exported model.

The work is in `reef.learners`; this step reads the table, checks the target against the
task and refuses with the reason when it does not fit.
"""

from __future__ import annotations

import pyarrow.parquet as pq

import reef
from reef.learners import SCALED, estimator, prepare, train
from reef.tasks import TaskMismatch


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("train"))
    try:
        prepared = prepare(table, p["target"], p["task"], p["exclude"])
    except TaskMismatch as e:
        raise SystemExit(f"tabular-learner: {e.message}") from None
    model = estimator(p["algorithm"], prepared.classifier, p["seed"])
    print(
        f"training {p['algorithm']} ({type(model).__name__}) on {table.num_rows} rows", flush=True
    )
    train(ctx, prepared, model, scale=p["algorithm"] in SCALED)


if __name__ == "__main__":
    main()
