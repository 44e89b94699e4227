"""Export a model logged with MLflow (its MLmodel folder) into reef's ONNX layout, with the
parity check. Run as a child process (`python -m reef.runtime.mlflow_export SRC DEST`): a
pickled model runs code when loaded, so it is never loaded in the server.

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
    from reef.runtime.export import export_sklearn

    mlmodel = yaml.safe_load((src / "MLmodel").read_text())
    flavors = mlmodel.get("flavors", {})
    if "sklearn" not in flavors:
        kinds = ", ".join(sorted(k for k in flavors if k != "python_function")) or "none"
        return {
            "ok": False,
            "reason": f"not servable: reef exports scikit-learn models (flavor: {kinds})",
        }
    model = load_sklearn(src, flavors["sklearn"])
    n = int(getattr(model, "n_features_in_", 0) or 0)
    if not n:
        return {
            "ok": False,
            "reason": "not servable: the model does not say how many features it takes",
        }
    names = [str(x) for x in getattr(model, "feature_names_in_", [f"x{i}" for i in range(n)])]
    classes = [str(c) for c in getattr(model, "classes_", [])] or None
    sample = np.random.default_rng(0).normal(size=(SAMPLE_ROWS, n)).astype(np.float32)
    result = export_sklearn(model, sample, dest, names, classes)
    return {"ok": True, "max_abs_diff": result.max_abs_diff}


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
