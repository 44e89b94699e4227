"""A new AI module from a template: `reef module new NAME` locally, or "New module" in the UI."""

from __future__ import annotations

from pathlib import Path

from reef.errors import Conflict, InvalidInput
from reef.manifest import MODULE_KINDS, parse_manifest
from reef.store.people import check_name

MANIFEST = """name = "{name}"
kind = "{kind}"
description = "{description}"
entrypoint = "main.py"
requirements = []

[inputs]
data = "dataset"

[outputs]
data = "dataset"

[params.label]
type = "column"
default = "label"
help = "The label column (left untouched)."

[params.factor]
type = "float"
default = 1.0
min = 0.0
help = "Every numeric feature is multiplied by this."
"""

MAIN = '''"""{name}: {description}"""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import reef


def main() -> None:
    ctx = reef.step()
    table = pq.read_table(ctx.input_path("data"))
    factor, label = ctx.params["factor"], ctx.params["label"]
    for i, field in enumerate(table.schema):
        if field.name != label and pa.types.is_floating(field.type):
            table = table.set_column(i, field.name, pc.multiply(table.column(i), factor))
    pq.write_table(table, ctx.output_path("data"))
    ctx.log_metrics({{"rows": table.num_rows}})
    print(f"scaled {{table.num_columns - 1}} columns of {{table.num_rows}} rows by {{factor}}")


if __name__ == "__main__":
    main()
'''

README = """# {name}

{description}

A module made from reef's template: it multiplies the float feature columns of its input by
`factor`. Change `main.py` and `reef.toml`, then `git push` to publish a new version.

- input `data` (dataset), output `data` (dataset)
- params: `label` (column, left untouched), `factor` (float >= 0)
"""


def files(name: str, kind: str = "data-processor", description: str = "") -> dict[str, bytes]:
    """The files of a new module, checked to form a valid manifest."""
    check_name("module", name)
    if kind not in MODULE_KINDS:
        raise InvalidInput(f"unknown module kind {kind!r}: use one of {', '.join(MODULE_KINDS)}")
    description = (description or "A new reef module.").replace('"', "'")
    values = {"name": name, "kind": kind, "description": description}
    out = {
        "reef.toml": MANIFEST.format(**values),
        "main.py": MAIN.format(**values),
        "README.md": README.format(**values),
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
