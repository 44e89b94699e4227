"""The model page's settings forms, as fields and back: promotion gates and monitor
thresholds. The documents they build are those the JSON API takes (`POST …/gates`,
`PATCH …/monitor`) and go through the same validation; the routes are in `models`.
"""

from __future__ import annotations

from typing import Any

from reef.errors import InvalidInput
from reef.runtime import gates, monitoring

_ROW = ("metric", "min", "max")  # the fields of metric row i: metric_i, min_i, max_i


def gates_fields(doc: dict | None) -> dict[str, str]:
    """The gates form's fields for a gates document (None: no gates)."""
    checks = (doc or {}).get("checks", [])
    fields = {"aliases": ", ".join((doc or {}).get("aliases", gates.DEFAULT_ALIASES))}
    for i, c in enumerate(c for c in checks if c["type"] == "metric"):
        fields |= {f"metric_{i}": c["metric"], f"min_{i}": _text(c.get("min"))}
        fields[f"max_{i}"] = _text(c.get("max"))
    parity = _first(checks, "parity")
    fields["parity"] = "yes" if parity is not None else "no"
    fields["parity_max_diff"] = _text((parity or {}).get("max_diff"))
    latency = _first(checks, "latency") or {}
    fields["latency_max_ms"] = _text(latency.get("max_ms"))
    fields["latency_batch"] = _text(latency.get("batch"))
    better = _first(checks, "better_than") or {}
    for key in ("dataset", "alias", "label", "metric", "min_delta"):
        fields[f"better_{key}"] = _text(better.get(key))
    return fields


def gates_from_fields(fields: dict[str, str]) -> dict | None:
    """The gates document the form describes (None when it sets no check), validated."""
    checks = _metric_checks(fields)
    if fields.get("parity") == "yes":
        max_diff = _num(fields, "parity_max_diff", "parity max |diff|")
        checks.append(_drop_none({"type": "parity", "max_diff": max_diff}))
    if (max_ms := _num(fields, "latency_max_ms", "latency (ms)")) is not None:
        batch = _num(fields, "latency_batch", "latency rows per call")
        checks.append({"type": "latency", "max_ms": max_ms, "batch": 1 if batch is None else batch})
    if dataset := fields.get("better_dataset", "").strip():
        check = {"type": "better_than", "dataset": dataset}
        for key in ("alias", "label", "metric"):
            if value := fields.get(f"better_{key}", "").strip():
                check[key] = value
        margin = _num(fields, "better_min_delta", "better-than margin")
        checks.append(_drop_none({**check, "min_delta": margin}))
    if not checks:
        return None
    aliases = [a.strip() for a in fields.get("aliases", "").split(",") if a.strip()]
    return gates.parse({"aliases": aliases or gates.DEFAULT_ALIASES, "checks": checks})


def _metric_checks(fields: dict[str, str]) -> list[dict[str, Any]]:
    checks = []
    for i in range(metric_rows(fields)):
        name = fields.get(f"metric_{i}", "").strip()
        row = f"metric row {i + 1}"
        low, high = _num(fields, f"min_{i}", f"{row}: min"), _num(fields, f"max_{i}", f"{row}: max")
        if not name and low is None and high is None:
            continue  # an empty row
        if not name or (low is None and high is None):
            raise InvalidInput(f"{row}: give the metric's name and a min or a max")
        checks.append(_drop_none({"type": "metric", "metric": name, "min": low, "max": high}))
    return checks


def gates_form(fields: dict[str, str]) -> dict[str, Any]:
    """What the gates form template needs: its fields, and its metric rows plus a blank one."""
    return {"gate_fields": fields, "gate_rows": metric_rows(fields) + 1}


def metric_rows(fields: dict[str, str]) -> int:
    """How many metric rows the fields hold."""
    rows = [int(n) for k in fields for p, _, n in [k.partition("_")] if p in _ROW and n.isdigit()]
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


def _first(checks: list[dict], kind: str) -> dict | None:
    return next((c for c in checks if c["type"] == kind), None)


def _drop_none(check: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in check.items() if v is not None}
