"""An unchanged MLflow script: scikit-learn autolog."""

import json

import mlflow
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

mlflow.set_experiment("autolog")
mlflow.sklearn.autolog()
X, y = load_iris(return_X_y=True)
with mlflow.start_run() as run:
    RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
r = mlflow.MlflowClient().get_run(run.info.run_id)
print(
    "RESULT "
    + json.dumps(
        {"run_id": run.info.run_id, "params": len(r.data.params), "metrics": sorted(r.data.metrics)}
    )
)
