"""An unchanged MLflow script: log_model, register_model, an alias."""

import json

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.set_experiment("registry")
X, y = load_iris(return_X_y=True)
with mlflow.start_run():
    clf = LogisticRegression(max_iter=500).fit(X, y)
    info = mlflow.sklearn.log_model(clf, name="model")
v = mlflow.register_model(info.model_uri, "iris-lr")
c = mlflow.MlflowClient()
c.set_registered_model_alias("iris-lr", "production", v.version)
alias = c.get_model_version_by_alias("iris-lr", "production")
print(
    "RESULT "
    + json.dumps(
        {"version": v.version, "alias": alias.version, "proba": clf.predict_proba(X[:5]).tolist()}
    )
)
