"""Writes a real MLflow SQLite store (3 runs, one nested) for the import test."""

import json

import mlflow

mlflow.set_experiment("legacy")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_params({"lr": 0.1, "depth": 4})
    for i in range(100):
        mlflow.log_metric("loss", 1 / (i + 1), step=i)
    mlflow.set_tag("team", "risk")
    mlflow.log_text("hello", "notes/readme.txt")
    with mlflow.start_run(run_name="child", nested=True):
        mlflow.log_metric("x", 2.0)
with mlflow.start_run(run_name="other"):
    mlflow.log_param("lr", 0.2)
    mlflow.log_metric("acc", 0.75)
print("RESULT " + json.dumps({"parent": parent.info.run_id}))
