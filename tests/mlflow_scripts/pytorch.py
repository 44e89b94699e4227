"""An unchanged MLflow script: PyTorch models logged (the whole pickled module with a
signature; a torch.export archive with an input example; one with neither), registered,
one given an alias."""

import json

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from sklearn.datasets import load_iris

mlflow.set_experiment("torch-models")
X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
torch.manual_seed(0)
clf = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
reg = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
optimizer = torch.optim.Adam([*clf.parameters(), *reg.parameters()], lr=0.05)
xt, yt = torch.from_numpy(X), torch.from_numpy(y)
for _ in range(50):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(clf(xt), yt)
    loss = loss + torch.nn.functional.mse_loss(reg(xt)[:, 0], xt[:, 3])
    loss.backward()
    optimizer.step()
with torch.no_grad():
    logits, values = clf(xt[:5]).numpy(), reg(xt[:5]).numpy()
with mlflow.start_run():
    mlflow.log_metric("loss", float(loss))
    signature = infer_signature(X[:5], logits)
    pickled = mlflow.pytorch.log_model(
        clf, name="clf", signature=signature, serialization_format="pickle"
    )
    exported = mlflow.pytorch.log_model(
        reg, name="reg", input_example=X[:5], pip_requirements=["torch"]
    )
    bare = mlflow.pytorch.log_model(
        clf, name="bare", serialization_format="pickle", pip_requirements=["torch"]
    )
v = mlflow.register_model(pickled.model_uri, "iris-torch")
c = mlflow.MlflowClient()
c.set_registered_model_alias("iris-torch", "production", v.version)
r = mlflow.register_model(exported.model_uri, "petal-width")
refused = mlflow.register_model(bare.model_uri, "bare-torch")
print(
    "RESULT "
    + json.dumps(
        {
            "version": v.version,
            "alias": c.get_model_version_by_alias("iris-torch", "production").version,
            "reg_version": r.version,
            "refused": c.get_model_version("bare-torch", refused.version).status_message,
            "rows": X[:5].tolist(),
            "logits": logits.tolist(),
            "values": values.tolist(),
        }
    )
)
