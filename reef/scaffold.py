"""A new AI module from a template: `reef module new NAME` locally, or "New module" in the UI.

Each kind of module gets its own working template: a data processor scales columns, a model
trains and exports a classifier, an evaluator scores a model on a test set, a visualization
draws a chart as an artifact. All are valid modules that run as they are."""

from __future__ import annotations

from pathlib import Path

from reef.errors import Conflict, InvalidInput
from reef.manifest import MODULE_KINDS, parse_manifest
from reef.store.people import check_name

HEADER = """name = "{name}"
kind = "{kind}"
description = "{description}"
entrypoint = "main.py"
requirements = []
"""
LABEL = """
[params.label]
type = "column"
default = "label"
help = "{help}"
"""
PORTS = {
    "data-processor": '[inputs]\ndata = "dataset"\n\n[outputs]\ndata = "dataset"\n',
    "model": '[inputs]\ntrain = "dataset"\n\n[outputs]\nmodel = "model"\n',
    "evaluator": '[inputs]\nmodel = "model"\ntest = "dataset"\n',
    "visualization": '[inputs]\ndata = "dataset"\n',
}
PARAMS = {
    "data-processor": LABEL.format(help="The label column (left untouched).")
    + """
[params.factor]
type = "float"
default = 1.0
min = 0.0
help = "Every numeric feature is multiplied by this."

[columns.data]
from = "data"
""",
    "model": LABEL.format(help="The column to predict; every other numeric column is a feature.")
    + """
[params.max_iter]
type = "int"
default = 200
min = 1
help = "Iterations of the solver."
""",
    "evaluator": LABEL.format(help="The label column of the test set."),
    "visualization": """
[params.column]
type = "column"
dtype = "numeric"
default = "label"
help = "The numeric column to draw a histogram of."
""",
}

PROCESSOR = """
def main() -> None:
    ctx = reef.step()
    table = pq.read_table(ctx.input_path("data"))
    factor, label = ctx.params["factor"], ctx.params["label"]
    for i, field in enumerate(table.schema):
        if field.name != label and pa.types.is_floating(field.type):
            table = table.set_column(i, field.name, pc.multiply(table.column(i), factor))
    pq.write_table(table, ctx.output_path("data"))
    ctx.log_metrics({"rows": table.num_rows})
    print(f"scaled {table.num_columns - 1} columns of {table.num_rows} rows by {factor}")
"""
MODEL = """
def main() -> None:
    from sklearn.linear_model import LogisticRegression

    ctx = reef.step()
    table = pq.read_table(ctx.input_path("train"))
    label = ctx.params["label"]
    names = [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])
    x = x.astype(np.float32)
    values = [str(v) for v in table.column(label).to_pylist()]
    classes = sorted(set(values))
    y = np.array([classes.index(v) for v in values])
    model = LogisticRegression(max_iter=ctx.params["max_iter"]).fit(x, y)
    ctx.log_metrics({"train_accuracy": float(model.score(x, y))})
    # ONNX export with a parity check; the registry and the predict API read this output
    ctx.save_model(model, x[:256], names, classes, output="model")
    print(f"trained on {len(x)} rows, {len(names)} features, {len(classes)} classes")
"""
EVALUATOR = """
def main() -> None:
    import onnxruntime as ort

    ctx = reef.step()
    model_dir = ctx.input_path("model")
    schema = json.loads((model_dir / "schema.json").read_text())
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    table = pq.read_table(ctx.input_path("test"))
    features = schema["inputs"]["features"]
    x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False) for f in features])
    scores = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    classes = [str(c) for c in schema["outputs"]["classes"]]
    predicted = [classes[i] for i in np.asarray(scores).argmax(axis=1)]
    truth = [str(v) for v in table.column(ctx.params["label"]).to_pylist()]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    # a registered model records the metrics of the evaluators reading its output
    ctx.log_metrics({"accuracy": accuracy})
    print(f"accuracy {accuracy:.4f} on {len(truth)} rows")
"""
VISUALIZATION = """
def main() -> None:
    ctx = reef.step()
    table = pq.read_table(ctx.input_path("data"))
    values = table.column(ctx.params["column"]).to_numpy(zero_copy_only=False).astype(float)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=20)
    top = max(int(counts.max()), 1)
    bars = "".join(
        f'<rect x="{i * 20}" y="{200 - 200 * c / top:.1f}" width="18" '
        f'height="{200 * c / top:.1f}" fill="steelblue"/>'
        for i, c in enumerate(counts)
    )
    path = Path("histogram.svg")
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200">'
    path.write_text(f"{svg}{bars}</svg>")
    ctx.log_artifact(path)
    print(f"histogram of {len(values)} values")
"""
IMPORTS = {
    "data-processor": "import pyarrow as pa\nimport pyarrow.compute as pc\n"
    "import pyarrow.parquet as pq",
    "model": "import numpy as np\nimport pyarrow as pa\nimport pyarrow.parquet as pq",
    "evaluator": "import json\n\nimport numpy as np\nimport pyarrow.parquet as pq",
    "visualization": "from pathlib import Path\n\nimport numpy as np\nimport pyarrow.parquet as pq",
}
BODIES = {
    "data-processor": PROCESSOR,
    "model": MODEL,
    "evaluator": EVALUATOR,
    "visualization": VISUALIZATION,
}
MAIN = '''"""{name}: {description}"""

{imports}

import reef


{body}

if __name__ == "__main__":
    main()
'''
WHAT = {
    "data-processor": "multiplies the float feature columns of its input by `factor`",
    "model": "trains a logistic regression on the numeric columns of `train` and exports it "
    "to ONNX as output `model`",
    "evaluator": "scores the ONNX model `model` on the table `test` and logs its `accuracy`",
    "visualization": "draws a histogram of one numeric column as an SVG artifact",
}
README = """# {name}

{description}

A {kind} module made from reef's template: it {what}. Change `main.py` and `reef.toml`, then
`git push` to publish a new version.
"""


def files(name: str, kind: str = "data-processor", description: str = "") -> dict[str, bytes]:
    """The files of a new module of `kind`, checked to form a valid manifest."""
    check_name("module", name)
    if kind not in MODULE_KINDS:
        raise InvalidInput(f"unknown module kind {kind!r}: use one of {', '.join(MODULE_KINDS)}")
    description = (description or "A new reef module.").replace('"', "'")
    values = {"name": name, "kind": kind, "description": description}
    body = BODIES[kind]
    out = {
        "reef.toml": HEADER.format(**values) + "\n" + PORTS[kind] + PARAMS[kind],
        "main.py": MAIN.format(**values, imports=IMPORTS[kind], body=body.strip("\n") + "\n"),
        "README.md": README.format(**values, what=WHAT[kind]),
    }
    parse_manifest(out["reef.toml"])
    return {path: text.encode() for path, text in out.items()}


def write(dest: Path, name: str, kind: str = "data-processor", description: str = "") -> Path:
    """Scaffold a module folder at `dest/name` (refuses to overwrite an existing folder)."""
    target = dest / name
    if target.exists():
        raise Conflict(f"{target} already exists")
    target.mkdir(parents=True)
    for path, data in files(name, kind, description).items():
        (target / path).write_bytes(data)
    return target
