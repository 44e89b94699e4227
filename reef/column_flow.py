"""What columns a step's table outputs hold, known before anything runs.

A module may describe each dataset output in its manifest, in a `[columns.OUTPUT]` table:

    [columns.train]
    from = "data"              # the output has the columns (and types) of input `data`
    drop = ["{label}"]         # ... less these; "{PARAM}" stands for a parameter's value
    add = {"{output}" = "string", "score" = "numeric"}   # ... plus these (numeric, string, any)

An output it does not describe is unknown: steps that read it are not checked. The planner
follows these through the pipeline from the datasets' schemas, so a column parameter naming a
column the step will not get, or of the wrong type, is refused when the pipeline is saved.
Pure: no store, no server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reef.errors import InvalidInput

Columns = dict[str, str]  # name -> Arrow type ("int64", "string", ...) or UNKNOWN_TYPE
UNKNOWN_TYPE = "unknown"
ADD_TYPES = {"numeric": "double", "string": "string", "any": UNKNOWN_TYPE}
_KEYS = {"from", "drop", "add"}
_PARAM_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


@dataclass(frozen=True)
class OutputColumns:
    """How one dataset output's columns follow from an input's (see the module docstring)."""

    source: str | None = None  # the input whose columns pass through; None: only `add`
    drop: tuple[str, ...] = ()
    add: dict[str, str] = field(default_factory=dict)  # name -> numeric | string | any


def parse(table: Any, inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, OutputColumns]:
    """The manifest's `[columns]` tables, checked; raises InvalidInput naming the key."""
    if not isinstance(table, dict):
        raise InvalidInput("reef.toml: [columns] must hold one table per dataset output")
    out = {}
    for name, spec in table.items():
        where = f"reef.toml: columns.{name}"
        if outputs.get(name) != "dataset":
            raise InvalidInput(f"{where}: the module has no dataset output '{name}'")
        if not isinstance(spec, dict) or set(spec) - _KEYS:
            raise InvalidInput(f"{where}: a table with from, drop and add only")
        source = spec.get("from")
        if source is not None and inputs.get(source) != "dataset":
            raise InvalidInput(f"{where}: 'from' must name a dataset input of the module")
        drop, add = spec.get("drop", []), spec.get("add", {})
        if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop):
            raise InvalidInput(f"{where}: 'drop' must be a list of column names")
        if not isinstance(add, dict) or not all(t in ADD_TYPES for t in add.values()):
            raise InvalidInput(f"{where}: 'add' maps column names to {', '.join(ADD_TYPES)}")
        out[name] = OutputColumns(source, tuple(drop), dict(add))
    return out


def derive(
    spec: OutputColumns, params: dict[str, Any], inputs: dict[str, Columns | None]
) -> Columns | None:
    """An output's columns from its inputs' (None where an input's are unknown) and the
    step's parameters; None when they cannot be known."""
    if spec.source is None:
        columns: Columns = {}
    elif (upstream := inputs.get(spec.source)) is None:
        return None
    else:
        columns = dict(upstream)
    for name in spec.drop:
        columns.pop(_name(name, params), None)
    for name, kind in spec.add.items():
        columns[_name(name, params)] = ADD_TYPES[kind]
    return columns


def _name(text: str, params: dict[str, Any]) -> str:
    """A column name with each `{PARAM}` replaced by that parameter's value."""
    return _PARAM_REF.sub(lambda m: str(params.get(m[1], "")), text)
