"""tabular-learner: a classifier or regressor over every kind of column, with its
preprocessing (imputation, one-hot encoding, scaling, TF-IDF) inside the exported model.

The work is in `reef.learners`; this step reads the table, checks the target against the
task and refuses with the reason when it does not fit.
"""

from __future__ import annotations

import pyarrow.parquet as pq

import reef
from reef.learners import SCALED, choose, estimator, prepare, train
from reef.tasks import TaskMismatch


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("train"))
    try:
        prepared = prepare(table, p["target"], p["task"], p["exclude"])
    except TaskMismatch as e:
        raise SystemExit(f"tabular-learner: {e.message}") from None
    algorithm = p["algorithm"]
    if algorithm == "auto":
        algorithm, scores = choose(prepared, p["seed"])
        ctx.log_params({"algorithm_chosen": algorithm})
        ctx.log_metrics({f"cv_{name}": score for name, score in scores.items()})
        said = ", ".join(f"{n} {s:.4f}" for n, s in scores.items())
        print(f"auto: cross-validated on the training rows ({said}): {algorithm}", flush=True)
    model = estimator(algorithm, prepared.classifier, p["seed"])
    print(f"training {algorithm} ({type(model).__name__}) on {table.num_rows} rows", flush=True)
    train(ctx, prepared, model, scale=algorithm in SCALED)


if __name__ == "__main__":
    main()
