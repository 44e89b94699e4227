"""The unchanged MLflow script both servers get (run with the same MLflow client for both):
10 params, 5 metrics x 1,000 steps sent in autolog-style batches of 100 steps, 3 artifacts
and a logged scikit-learn model."""

import mlflow
from mlflow.entities import Metric
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

STEPS, BATCH = 1000, 100
mlflow.set_experiment("bench-compat")
with mlflow.start_run() as run:
    mlflow.log_params({f"p{i}": i * 0.1 for i in range(10)})
    client, pending = mlflow.MlflowClient(), []
    for step in range(STEPS):
        stamp = 1_700_000_000_000 + step
        pending += [Metric(f"m{k}", 1.0 / (step + k + 1), stamp, step) for k in range(5)]
        if len(pending) >= 5 * BATCH:
            client.log_batch(run.info.run_id, metrics=pending)
            pending = []
    mlflow.log_text("notes " * 100, "notes.txt")
    mlflow.log_dict({"layers": [64, 32]}, "config.json")
    mlflow.log_text("x,y\n" + "\n".join(f"{i},{i * i}" for i in range(1000)), "data/table.csv")
    X, y = load_iris(return_X_y=True)
    mlflow.sklearn.log_model(LogisticRegression(max_iter=300).fit(X, y), name="model")
