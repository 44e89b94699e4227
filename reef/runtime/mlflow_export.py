"""Export a model logged with MLflow (its MLmodel folder) into reef's ONNX layout, with the
parity check. Run as a child process (`python -m reef.runtime.mlflow_export SRC DEST`), in
the step sandbox: a pickled model (scikit-learn's pickle or cloudpickle, PyTorch's whole-module
`model.pth`, the tensors of a `model.pt2` archive) runs code when loaded, so it is never loaded
in the server.

Prints one JSON line: {"ok": true, "max_abs_diff": ...} or {"ok": false, "reason": ...}.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SAMPLE_ROWS = 256


SAFE_MODULES = ("sklearn", "numpy", "scipy", "builtins", "collections")


def load_sklearn(src: Path, flavor: dict[str, Any]) -> Any:
    """The estimator: skops files load only if every type they hold is scikit-learn's,
    NumPy's or SciPy's; (cloud)pickle files load as they are, in this child process."""
    path = src / flavor.get("pickled_model", "model.pkl")
    kind = flavor.get("serialization_format", "pickle")
    if kind == "skops":
        import skops.io

        types = skops.io.get_untrusted_types(file=path)
        foreign = [t for t in types if t.split(".")[0] not in SAFE_MODULES]
        if foreign:
            raise ValueError(f"the model holds types reef does not trust: {foreign[:5]}")
        return skops.io.load(path, trusted=types)
    with path.open("rb") as f:
        if kind == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(f)
        return pickle.load(f)


def export(src: Path, dest: Path) -> dict[str, Any]:
    mlmodel = yaml.safe_load((src / "MLmodel").read_text())
    flavors = mlmodel.get("flavors", {})
    if "sklearn" in flavors:
        return export_sklearn_flavor(src, flavors["sklearn"], dest)
    if "pytorch" in flavors:
        return export_pytorch_flavor(src, mlmodel, dest)
    kinds = ", ".join(sorted(k for k in flavors if k != "python_function")) or "none"
    return {
        "ok": False,
        "reason": f"not servable: reef exports scikit-learn and PyTorch models (flavor: {kinds})",
    }


def export_sklearn_flavor(src: Path, flavor: dict[str, Any], dest: Path) -> dict[str, Any]:
    from reef.runtime.export import export_sklearn

    model = load_sklearn(src, flavor)
    n = int(getattr(model, "n_features_in_", 0) or 0)
    if not n:
        return {
            "ok": False,
            "reason": "not servable: the model does not say how many features it takes",
        }
    names = [str(x) for x in getattr(model, "feature_names_in_", [f"x{i}" for i in range(n)])]
    classes = [str(c) for c in getattr(model, "classes_", [])] or None
    result = export_sklearn(model, _noise(n), dest, names, classes)
    return {"ok": True, "max_abs_diff": result.max_abs_diff}


def export_pytorch_flavor(src: Path, mlmodel: dict[str, Any], dest: Path) -> dict[str, Any]:
    """A torch module takes one float32 (batch, features) tensor: the number of features (and
    their names, for a column signature) come from the logged signature or input example;
    the parity sample is that example plus random rows. Outputs are served as the module
    returns them (reef cannot tell logits from scores)."""
    from reef.runtime.export import export_torch

    shape = input_shape(src, mlmodel)
    if shape is None:
        return {"ok": False, "reason": "not servable: no input example or signature"}
    names, example = shape
    model = load_pytorch(src, mlmodel["flavors"]["pytorch"])
    sample = np.concatenate([example, _noise(len(names))]) if len(example) else _noise(len(names))
    result = export_torch(model.float(), sample, dest, names)
    return {"ok": True, "max_abs_diff": result.max_abs_diff}


def _noise(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(SAMPLE_ROWS, n)).astype(np.float32)


def input_shape(src: Path, mlmodel: dict[str, Any]) -> tuple[list[str], np.ndarray] | None:
    """(feature names, example rows) from the MLmodel's signature, else its input example;
    None when it has neither. ValueError for an input that is not one (batch, features)."""
    example = _input_example(src, mlmodel)
    spec = (mlmodel.get("signature") or {}).get("inputs")
    if spec:
        names = _signature_names(json.loads(spec) if isinstance(spec, str) else spec)
    elif example is not None:
        names = [f"x{i}" for i in range(example.shape[1])]
    else:
        return None
    if example is None or example.shape[1] != len(names):
        example = np.zeros((0, len(names)), dtype=np.float32)
    return names, example


def _signature_names(inputs: list[dict[str, Any]]) -> list[str]:
    if inputs and all(i.get("type") != "tensor" for i in inputs):  # a column signature
        return [str(i.get("name") or f"x{n}") for n, i in enumerate(inputs)]
    shape = (inputs[0].get("tensor-spec") or {}).get("shape") if len(inputs) == 1 else None
    if not shape or len(shape) != 2 or int(shape[1]) < 1:
        raise ValueError(
            f"reef serves models taking one (batch, features) tensor; the signature gives {inputs}"
        )
    return [f"x{i}" for i in range(int(shape[1]))]


def _input_example(src: Path, mlmodel: dict[str, Any]) -> np.ndarray | None:
    info = mlmodel.get("saved_input_example_info") or {}
    path = src / str(info.get("artifact_path") or "input_example.json")
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if isinstance(data, dict):  # a DataFrame example, split orient; or {"inputs": ...}
        data = data.get("data", data.get("inputs"))
    rows = np.asarray(data, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2:
        raise ValueError(f"reef serves (batch, features) inputs; the example is {rows.shape}")
    return rows


def load_pytorch(src: Path, flavor: dict[str, Any]) -> Any:
    """The torch module: `model.pt2` (torch.export archive) or the whole pickled module in
    `model.pth`, loaded with weights_only=False; only ever in this sandboxed child process."""
    import torch

    data = src / str(flavor.get("model_data") or "data")
    if flavor.get("code"):  # the code_paths the module's classes may import from
        sys.path.insert(0, str(src / str(flavor["code"])))
    if (data / "model.pt2").is_file():
        return torch.export.load(data / "model.pt2").module()
    path = data / "model.pth" if data.is_dir() else data
    model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model.pth holds a {type(model).__name__}, not a torch module")
    return model


def main(argv: list[str]) -> int:
    src, dest = Path(argv[0]), Path(argv[1])
    try:
        outcome = export(src, dest)
    except Exception as e:  # any failure is a reason the version cannot be served
        outcome = {"ok": False, "reason": f"not servable: {type(e).__name__}: {e}"}
    print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
