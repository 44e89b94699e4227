"""The builder's draft: a pipeline spec being edited in the browser.

The form sends strings; this module turns them back into the spec's types (a yes/no select
sends "false", which must stay False, not a truthy string), carries a column chosen once (the
label) to the later steps that need it, and knows which columns reach each step: a dataset's
schema, or, for a step fed by a data processor, the columns that processor passes through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from reef.errors import InvalidInput, InvalidParameter, ReefError
from reef.manifest import COLUMN_TYPES, Manifest
from reef.pipeline import DATASET_NAME

CARRIED = ("label", "target")  # column parameters that name the same column in every step
ManifestOf = Callable[[dict], Manifest]
ColumnsOf = Callable[[str, str | None], list[str]]  # (dataset, version) -> columns


def from_form(form: dict[str, str]) -> dict[str, Any]:
    """The draft in the form: its JSON, with the step fields the user just changed applied."""
    try:
        draft = json.loads(form.get("draft") or '{"steps": []}')
    except json.JSONDecodeError:
        raise InvalidInput("the builder's draft is not valid JSON; reload the page") from None
    for step in draft.get("steps", []):
        _apply(step, form)
    return draft


def _apply(step: dict, form: dict[str, str]) -> None:
    prefix = f"{step['name']}."
    lists: dict[str, list[str]] = {}
    for key, value in form.items():
        kind, _, rest = key.partition(":")
        if kind == "register" and rest == step["name"]:
            step["register"] = value.strip()
        if not rest.startswith(prefix):
            continue
        field = rest.removeprefix(prefix)
        if kind == "param":
            step.setdefault("params", {})[field] = value
        elif kind == "input":  # "— choose —" leaves the input unconnected
            inputs = step.setdefault("inputs", {})
            inputs.update({field: value}) if value else inputs.pop(field, None)
        elif kind == "cols":  # cols:STEP.PARAM marks the list, cols:STEP.PARAM:COLUMN ticks one
            param, _, column = field.partition(":")
            lists.setdefault(param, []).extend([column] if column else [])
    step.setdefault("params", {}).update(lists)
    if not step.get("register"):
        step.pop("register", None)


def carry(old: dict, new: dict, manifest_of: ManifestOf) -> None:
    """A label chosen in one step becomes the label of the later steps that had the old one
    or had none chosen yet, so the person picks it once."""
    before = {s["name"]: s.get("params", {}) for s in old.get("steps", [])}
    for i, step in enumerate(new["steps"]):
        for key in CARRIED:
            value, was = step.get("params", {}).get(key), before.get(step["name"], {}).get(key)
            if not value or value == was:
                continue
            for later in new["steps"][i + 1 :]:
                kept, wanted = before.get(later["name"], {}), manifest_of(later).params
                for k in CARRIED:
                    follows = kept.get(k) in (was, None, "")
                    if k in wanted and wanted[k].type == "column" and follows:
                        later.setdefault("params", {})[k] = value


def chosen_label(draft: dict) -> str | None:
    """The label an earlier step names, for a step being added."""
    for step in reversed(draft["steps"]):
        for key in CARRIED:
            if value := step.get("params", {}).get(key):
                return value
    return None


def typed(manifest: Manifest, params: dict[str, Any]) -> dict[str, Any]:
    """Form strings as their parameters' types where they convert; the rest as given (the
    planner then names what is wrong)."""
    out = {}
    for name, value in params.items():
        param = manifest.params.get(name)
        if param is None or value is None or value == "" or param.type in ("string", "enum"):
            out[name] = value
            continue
        try:
            out[name] = param.coerce(value)
        except InvalidParameter:
            out[name] = value
    return out


def register_name(step: dict, where: str) -> None:
    name = step.get("register")
    if name is not None and (not isinstance(name, str) or not DATASET_NAME.match(name)):
        raise InvalidInput(
            f"{where}: model name {name!r} must be 1-63 lowercase letters, digits, '_', '.' or '-'"
        )


def columns(draft: dict, ref: str, manifest_of: ManifestOf, columns_of: ColumnsOf) -> list[str]:
    """The columns an input reads: a dataset's, or those an upstream data processor passes
    through (the columns of its own dataset input); [] when unknown."""
    seen: set[str] = set()
    while not ref.startswith("dataset:"):
        step_name = ref.split(".", 1)[0]
        step = next((s for s in draft["steps"] if s["name"] == step_name), None)
        if step is None or step_name in seen:
            return []
        seen.add(step_name)
        manifest = manifest_of(step)
        sources = [step.get("inputs", {}).get(k) for k, v in manifest.inputs.items()]
        if manifest.kind != "data-processor" or not (ref := next(filter(None, sources), "")):
            return []
    name, _, version = ref.removeprefix("dataset:").partition("@")
    try:
        return columns_of(name, version or None)
    except ReefError:
        return []


def check_columns(draft: dict, manifest_of: ManifestOf, columns_of: ColumnsOf) -> None:
    """Refuse a column parameter naming a column its input does not have (the planner checks
    dataset inputs; this also checks inputs fed by other steps)."""
    for step in draft["steps"]:
        where, manifest = f"step '{step['name']}'", manifest_of(step)
        register_name(step, where)
        resolved = manifest.resolve_params(step.get("params"))
        for name, param in manifest.params.items():
            ref = step.get("inputs", {}).get(param.input or "")
            known = columns(draft, ref, manifest_of, columns_of) if ref else []
            values = resolved[name] if isinstance(resolved[name], list) else [resolved[name]]
            missing = [v for v in values if param.type in COLUMN_TYPES and v not in known]
            if known and missing:
                raise InvalidInput(
                    f"{where}: parameter '{name}': no column '{missing[0]}' reaches this step"
                    f" (columns: {', '.join(known)})"
                )
