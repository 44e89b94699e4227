"""An unchanged MLflow script: fluent logging, nested runs, artifacts, search, history."""

import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient

mlflow.set_experiment("Churn study")
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_param("lr", 0.01)
    mlflow.log_params({"layers": 3, "model": "rf"})
    for i in range(50):
        mlflow.log_metric("loss", 1 / (i + 1), step=i)
    mlflow.log_metrics({"acc": 0.9, "f1": 0.8})
    mlflow.set_tag("team", "risk")
    mlflow.log_text("hello", "notes/readme.txt")
    mlflow.log_dict({"a": 1}, "config.json")
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("x", 1.0)
with mlflow.start_run(run_name="weaker"):
    mlflow.log_params({"model": "rf"})
    mlflow.log_metric("acc", 0.7)
c = MlflowClient()
exp = mlflow.get_experiment_by_name("Churn study")
found = c.search_runs(
    [exp.experiment_id], "metrics.acc > 0.5 and params.model = 'rf'", order_by=["metrics.acc DESC"]
)
paged = c.search_runs([exp.experiment_id], "", max_results=1)
history = c.get_metric_history(run.info.run_id, "loss")
path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes/readme.txt")
out = {
    "experiment_id": exp.experiment_id,
    "run_id": run.info.run_id,
    "child_id": child.info.run_id,
    "found": [r.info.run_name for r in found],
    "paged": len(paged),
    "paged_token": bool(paged.token),
    "history": [(m.step, m.value) for m in history],
    "artifact": Path(path).read_text(),
    "listing": sorted(f.path for f in c.list_artifacts(run.info.run_id)),
    "parent": c.get_run(child.info.run_id).data.tags.get("mlflow.parentRunId"),
}
print("RESULT " + json.dumps(out))
