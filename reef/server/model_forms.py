"""The model page's settings forms, as fields and back: promotion gates and monitor
thresholds. The documents they build are those the JSON API takes (`POST …/gates`,
`PATCH …/monitor`) and go through the same validation; the routes are in `models`.
"""

from __future__ import annotations

from typing import Any

from reef.errors import InvalidInput
from reef.runtime import gates, monitoring

# The form holds rows of each kind of check: field `{prefix}{key}_{i}` is `key` of row i (a
# parity row is on when `parity_{i}` is "yes"). Every check of the gates is a row, so saving
# the form as shown keeps them all; each kind also gets one blank row to add another.
_PREFIX = {"metric": "", "parity": "parity_", "latency": "latency_", "better_than": "better_"}
_CHOICES = {"better_than": {"metric"}}  # select fields: always sent, so no sign of a used row


def gates_fields(doc: dict | None) -> dict[str, str]:
    """The gates form's fields for a gates document (None: no gates)."""
    checks = (doc or {}).get("checks", [])
    fields = {"aliases": ", ".join((doc or {}).get("aliases", gates.DEFAULT_ALIASES))}
    for kind, prefix in _PREFIX.items():
        for i, check in enumerate(c for c in checks if c["type"] == kind):
            fields |= {f"{prefix}{k}_{i}": _text(check.get(k)) for k in gates.FIELDS[kind]}
            fields |= {f"parity_{i}": "yes"} if kind == "parity" else {}
    return fields


def gates_from_fields(fields: dict[str, str]) -> dict | None:
    """The gates document the form describes (None when it sets no check), validated."""
    checks = [
        check
        for kind in _PREFIX
        for i in range(gate_rows(fields, kind))
        if (check := _row_check(fields, kind, i)) is not None
    ]
    if not checks:
        return None
    aliases = [a.strip() for a in fields.get("aliases", "").split(",") if a.strip()]
    return gates.parse({"aliases": aliases or gates.DEFAULT_ALIASES, "checks": checks})


def _row_check(fields: dict[str, str], kind: str, i: int) -> dict[str, Any] | None:
    """The check row i of `kind` describes, validated; None for an empty row."""
    row, prefix = f"{kind.replace('_', '-')} row {i + 1}", _PREFIX[kind]
    values = _drop_none(
        {key: _field(fields, f"{prefix}{key}_{i}", key, row) for key in gates.FIELDS[kind]}
    )
    if kind == "parity" and fields.get(f"parity_{i}") != "yes":
        return None
    if kind != "parity" and not set(values) - _CHOICES.get(kind, set()):
        return None
    return gates.parse_check(row, {"type": kind, **values})


def _field(fields: dict[str, str], name: str, key: str, row: str) -> str | float | int | None:
    """Form field `name` as check field `key` takes it: a number or a text (None: empty)."""
    if key in gates.NUMBERS:
        return _num(fields, name, f"{row}: {key}")
    return fields.get(name, "").strip() or None


def gates_form(fields: dict[str, str]) -> dict[str, Any]:
    """What the gates form template needs: its fields, and per kind its rows plus a blank one."""
    return {"gate_fields": fields, "gate_rows": {k: gate_rows(fields, k) + 1 for k in _PREFIX}}


def gate_rows(fields: dict[str, str], kind: str) -> int:
    """How many rows of `kind` the fields hold."""
    names = {f"{_PREFIX[kind]}{key}" for key in gates.FIELDS[kind]} | (
        {"parity"} if kind == "parity" else set()
    )
    rows = [
        int(n)
        for k in fields
        for name, _, n in [k.rpartition("_")]
        if name in names and n.isdigit()
    ]
    return 1 + max(rows, default=-1)


def monitor_fields(config: dict[str, Any]) -> dict[str, str]:
    return {key: _text(config.get(key)) for key in monitoring.DEFAULTS}


def monitor_from_fields(fields: dict[str, str]) -> dict[str, Any]:
    """Monitor settings from the form: an empty field puts the setting back to its default."""
    return {key: _num(fields, key) for key in monitoring.DEFAULTS}


def _num(fields: dict[str, str], key: str, label: str | None = None) -> float | int | None:
    """The number typed in field `key` (None when empty); `label` names it in errors."""
    text = fields.get(key, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{label or key} must be a number, got {text!r}") from None
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _drop_none(check: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in check.items() if v is not None}
