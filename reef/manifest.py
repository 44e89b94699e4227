"""The module manifest: `reef.toml` at the root of every AI module.

`parse_manifest` checks the whole file and names the key at fault; `Manifest.resolve_params`
turns what a user gave (JSON values or HTML form strings) into typed, range-checked values.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from reef import column_flow
from reef.errors import InvalidInput, InvalidParameter

MODULE_KINDS = ("data-processor", "model", "evaluator", "visualization")
PORT_KINDS = ("dataset", "model")
PARAM_TYPES = ("int", "float", "bool", "string", "enum", "column", "columns")
COLUMN_TYPES = ("column", "columns")  # parameters that name columns of a dataset input
TASKS = ("classification", "regression", "text_classification", "image_classification")
COLUMN_DTYPES = ("any", "numeric", "string")

_TOP_KEYS = {
    "name",
    "kind",
    "description",
    "entrypoint",
    "inputs",
    "outputs",
    "params",
    "requirements",
    "task",
    "columns",
}
_PARAM_KEYS = {"type", "default", "help", "min", "max", "choices", "required", "input", "dtype"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_PORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


class InvalidManifest(InvalidInput):
    """`reef.toml` is missing, not TOML, or describes an impossible module."""


@dataclass(frozen=True)
class Param:
    """One parameter a module accepts."""

    name: str
    type: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    input: str | None = None  # column(s): the dataset input the columns belong to
    dtype: str | None = None  # column(s): any | numeric | string

    def coerce(self, value: Any) -> Any:
        """Return `value` as this parameter's type, range-checked; raise InvalidParameter."""
        value = _COERCERS[self.type](self, value)
        self._check_range(value)
        return value

    def _check_range(self, value: Any) -> None:
        if self.min is not None and value < self.min:
            raise InvalidParameter(f"parameter {self.name!r} must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise InvalidParameter(f"parameter {self.name!r} must be <= {self.max}, got {value!r}")


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated `reef.toml`."""

    name: str
    kind: str
    description: str
    entrypoint: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    params: dict[str, Param]
    requirements: list[str]
    task: str = ""  # what a model module learns (planner checks the target): see TASKS
    # dataset output -> how its columns follow from the inputs' (reef.column_flow)
    columns: dict[str, column_flow.OutputColumns] = field(default_factory=dict)

    def resolve_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """All parameters with defaults filled in and given values coerced and checked.

        `None`, and `""` for anything but a string, count as "not given" (an empty form field).
        """
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise InvalidParameter(f"parameters must be an object, got {type(given).__name__}")
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise InvalidParameter(
                f"unknown parameter {unknown[0]!r} for module {self.name} (known: {known})"
            )
        return {name: _resolve_one(p, given.get(name)) for name, p in self.params.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (params keep their order)."""
        data = asdict(self)
        for param in data["params"].values():
            if param["choices"] is not None:
                param["choices"] = list(param["choices"])
        return data


def parse_manifest(text: str) -> Manifest:
    """Parse and validate the text of a `reef.toml`; raise InvalidManifest naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidManifest(f"reef.toml is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise InvalidManifest(
            f"reef.toml: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    return Manifest(
        name=_name(data),
        kind=_choice(data, "kind", MODULE_KINDS),
        description=_string(data, "description", required=False),
        entrypoint=_entrypoint(data),
        inputs=_ports(data, "inputs"),
        outputs=_ports(data, "outputs"),
        params=_params(data.get("params", {}), _ports(data, "inputs")),
        requirements=_requirements(data.get("requirements", [])),
        task=_choice(data, "task", TASKS) if "task" in data else "",
        columns=_columns(data),
    )


# --- top-level keys ---------------------------------------------------------------------


def _string(data: dict[str, Any], key: str, required: bool = True) -> str:
    if key not in data:
        if required:
            raise InvalidManifest(f"reef.toml: missing required key {key!r}")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise InvalidManifest(f"reef.toml: {key!r} must be a string, got {value!r}")
    if required and not value.strip():
        raise InvalidManifest(f"reef.toml: {key!r} must not be empty")
    return value


def _name(data: dict[str, Any]) -> str:
    name = _string(data, "name")
    if not _NAME_RE.match(name):
        raise InvalidManifest(
            f"reef.toml: name {name!r} must be lowercase letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 63 characters)"
        )
    return name


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _string(data, key)
    if value not in allowed:
        raise InvalidManifest(
            f"reef.toml: unknown {key} {value!r} (expected one of: {', '.join(allowed)})"
        )
    return value


def _entrypoint(data: dict[str, Any]) -> str:
    path = _string(data, "entrypoint")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise InvalidManifest(
            f"reef.toml: entrypoint {path!r} must be a relative path inside the module"
        )
    if not path.endswith(".py"):
        raise InvalidManifest(f"reef.toml: entrypoint {path!r} must be a .py file")
    return path


def _ports(data: dict[str, Any], key: str) -> dict[str, str]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise InvalidManifest(f"reef.toml: [{key}] must be a table of name = kind")
    for name, kind in table.items():
        if not _PORT_RE.match(name):
            raise InvalidManifest(f"reef.toml: {key}.{name}: invalid name")
        if kind not in PORT_KINDS:
            raise InvalidManifest(
                f"reef.toml: {key}.{name}: unknown kind {kind!r} "
                f"(expected one of: {', '.join(PORT_KINDS)})"
            )
    return dict(table)


def _columns(data: dict[str, Any]) -> dict[str, column_flow.OutputColumns]:
    try:
        return column_flow.parse(
            data.get("columns", {}), _ports(data, "inputs"), _ports(data, "outputs")
        )
    except InvalidManifest:
        raise
    except InvalidInput as e:
        raise InvalidManifest(e.message) from None


def _requirements(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        raise InvalidManifest("reef.toml: 'requirements' must be a list of strings")
    return list(value)


# --- params -----------------------------------------------------------------------------


def _params(table: Any, inputs: dict[str, str]) -> dict[str, Param]:
    if not isinstance(table, dict):
        raise InvalidManifest("reef.toml: [params] must hold one table per parameter")
    params = {}
    for name, spec in table.items():
        if not _PORT_RE.match(name):
            raise InvalidManifest(f"reef.toml: params.{name}: invalid parameter name")
        if not isinstance(spec, dict):
            raise InvalidManifest(f"reef.toml: params.{name} must be a table ([params.{name}])")
        params[name] = _param(name, spec, inputs)
    return params


def _param(name: str, spec: dict[str, Any], inputs: dict[str, str]) -> Param:
    where = f"reef.toml: params.{name}"
    unknown = sorted(set(spec) - _PARAM_KEYS)
    if unknown:
        raise InvalidManifest(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_PARAM_KEYS))})"
        )
    ptype = spec.get("type")
    if ptype not in PARAM_TYPES:
        raise InvalidManifest(
            f"{where}: unknown type {ptype!r} (expected one of: {', '.join(PARAM_TYPES)})"
        )
    help_text = spec.get("help", "")
    if not isinstance(help_text, str):
        raise InvalidManifest(f"{where}: 'help' must be a string")
    required = spec.get("required", "default" not in spec)
    if not isinstance(required, bool):
        raise InvalidManifest(f"{where}: 'required' must be true or false")
    if not required and "default" not in spec:
        raise InvalidManifest(f"{where}: needs a 'default' (or required = true)")
    bounds = _bounds(where, ptype, spec)
    choices = _choices(where, ptype, spec)
    column = _column(where, ptype, spec, inputs)
    param = Param(name, ptype, None, help_text, *bounds, choices, required, *column)
    return _with_default(where, param, spec)


def _column(
    where: str, ptype: str, spec: dict[str, Any], inputs: dict[str, str]
) -> tuple[str | None, str | None]:
    """(input, dtype) of a column parameter: which dataset input, and what type of column."""
    if ptype not in COLUMN_TYPES:
        for key in ("input", "dtype"):
            if key in spec:
                raise InvalidManifest(
                    f'{where}: {key!r} only applies to type = "column" or "columns"'
                )
        return None, None
    datasets = [k for k, kind in inputs.items() if kind == "dataset"]
    source = spec.get("input", datasets[0] if datasets else None)
    if source not in datasets:
        raise InvalidManifest(
            f"{where}: 'input' must name a dataset input of the module "
            f"(dataset inputs: {', '.join(datasets) or 'none'})"
        )
    dtype = spec.get("dtype", "any")
    if dtype not in COLUMN_DTYPES:
        raise InvalidManifest(f"{where}: 'dtype' must be one of {', '.join(COLUMN_DTYPES)}")
    return source, dtype


def _bounds(where: str, ptype: str, spec: dict[str, Any]) -> tuple[Any, Any]:
    bounds = []
    for key in ("min", "max"):
        value = spec.get(key)
        if value is not None:
            if ptype not in ("int", "float"):
                raise InvalidManifest(f"{where}: {key!r} only applies to int and float")
            if not _is_number(value) or (ptype == "int" and not isinstance(value, int)):
                article = "an" if ptype == "int" else "a"
                raise InvalidManifest(f"{where}: {key!r} must be {article} {ptype}, got {value!r}")
        bounds.append(value)
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise InvalidManifest(f"{where}: min ({low}) is greater than max ({high})")
    return low, high


def _choices(where: str, ptype: str, spec: dict[str, Any]) -> tuple[str, ...] | None:
    choices = spec.get("choices")
    if ptype != "enum":
        if choices is not None:
            raise InvalidManifest(f"{where}: 'choices' only applies to type = \"enum\"")
        return None
    if not isinstance(choices, list) or not choices:
        raise InvalidManifest(f"{where}: an enum needs 'choices', a non-empty list of strings")
    if not all(isinstance(c, str) for c in choices) or len(set(choices)) != len(choices):
        raise InvalidManifest(f"{where}: 'choices' must be distinct strings")
    return tuple(choices)


def _with_default(where: str, param: Param, spec: dict[str, Any]) -> Param:
    if "default" not in spec:
        return param
    if param.required:
        raise InvalidManifest(f"{where}: a required parameter cannot have a 'default'")
    value = spec["default"]
    try:
        if isinstance(value, str) and param.type not in ("string", "enum", *COLUMN_TYPES):
            raise _wrong(param, value)  # a TOML default must already be typed: "3" is no int
        default = param.coerce(value)
    except InvalidParameter as exc:
        raise InvalidManifest(f"{where}: bad default: {exc.message}") from None
    return replace(param, default=default)


# --- coercion ---------------------------------------------------------------------------


def _resolve_one(param: Param, value: Any) -> Any:
    if value is None or (value == "" and param.type != "string"):
        if param.required:
            raise InvalidParameter(f"missing required parameter {param.name!r}")
        return param.default
    return param.coerce(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrong(param: Param, value: Any) -> InvalidParameter:
    article = "an" if param.type == "int" else "a"
    return InvalidParameter(
        f"parameter {param.name!r} must be {article} {param.type}, got {value!r}"
    )


def _to_int(param: Param, value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong(param, value)


def _to_float(param: Param, value: Any) -> float:
    result: float | None = None
    if _is_number(value):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise _wrong(param, value)
    return result


def _to_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _wrong(param, value)


def _to_string(param: Param, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _wrong(param, value)


def _to_column(param: Param, value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise InvalidParameter(f"parameter {param.name!r} must name a column, got {value!r}")


def _to_columns(param: Param, value: Any) -> list[str]:
    """A list of column names: a JSON list, or a comma-separated string (a form field)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(
            f"parameter {param.name!r} must be a list of column names, got {value!r}"
        )
    names = [v for v in value if v]
    if len(set(names)) != len(names):
        raise InvalidParameter(f"parameter {param.name!r} names a column twice: {names!r}")
    return names


def _to_enum(param: Param, value: Any) -> str:
    choices = param.choices or ()
    if isinstance(value, str) and value in choices:
        return value
    raise InvalidParameter(
        f"parameter {param.name!r} must be one of {', '.join(choices)}, got {value!r}"
    )


_COERCERS = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "string": _to_string,
    "enum": _to_enum,
    "column": _to_column,
    "columns": _to_columns,
}
