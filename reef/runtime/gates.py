"""Acceptance gates: the checks a version must pass before an alias (production by default)
may point at it. A model and its project each may declare gates; both apply.

    {"aliases": ["production"],
     "checks": [
       {"type": "metric", "metric": "accuracy", "min": 0.9},
       {"type": "metric", "metric": "loss", "max": 0.5},
       {"type": "parity"},                                  # export parity within tolerance
       {"type": "latency", "max_ms": 5, "batch": 1},        # median of timed predictions
       {"type": "better_than", "alias": "production", "dataset": "digits@1",
        "label": "label", "metric": "accuracy", "min_delta": 0.0}]}

Each check answers {"type", "ok", "detail", "value", ...the check's own fields}.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from reef.errors import InvalidInput
from reef.runtime.serving import MAX_ROWS

if TYPE_CHECKING:
    from reef.runtime.registry import ModelService
    from reef.runtime.serving import Predictor

DEFAULT_ALIASES = ["production"]
FIELDS = {  # each kind of check -> the fields it takes besides "type"
    "metric": ("metric", "min", "max"),
    "parity": ("max_diff",),
    "latency": ("max_ms", "batch"),
    "better_than": ("dataset", "alias", "label", "metric", "min_delta"),
}
CHECKS = tuple(FIELDS)
SCORES = {"accuracy": True, "rmse": False}  # name -> higher is better
LATENCY_RUNS = 50
SCORE_CHUNK = 8192
NUMBERS = ("min", "max", "max_diff", "max_ms", "batch", "min_delta")  # numeric check fields


def parse(gates: Any) -> dict[str, Any]:
    """Validate a gates document; returns it with defaults filled in."""
    if not isinstance(gates, dict) or not isinstance(gates.get("checks"), list):
        raise InvalidInput('send {"checks": [...], "aliases": ["production"]}')
    aliases = gates.get("aliases", DEFAULT_ALIASES)
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidInput("'aliases' must be a list of alias names")
    checks = [parse_check(f"check {i}", c) for i, c in enumerate(gates["checks"])]
    return {"aliases": aliases, "checks": checks}


def parse_check(where: str, check: Any) -> dict[str, Any]:
    """Validate one check (`where` names it in errors); returns it with defaults filled in."""
    if not isinstance(check, dict) or check.get("type") not in CHECKS:
        raise InvalidInput(f"{where}: 'type' must be one of {', '.join(CHECKS)}")
    kind = check["type"]
    if unknown := sorted(set(check) - {"type", *FIELDS[kind]}):
        takes = ", ".join(FIELDS[kind])
        raise InvalidInput(f"{where}: unknown fields {unknown}; a {kind} check takes {takes}")
    for key in NUMBERS:
        if check.get(key) is not None and not _number(check[key]):
            raise InvalidInput(f"{where}: '{key}' must be a number, got {check[key]!r}")
    if kind == "metric" and not (isinstance(check.get("metric"), str) and _bound(check)):
        raise InvalidInput(f"{where}: a metric check needs 'metric' and 'min' or 'max'")
    if kind == "latency" and not (_number(check.get("max_ms")) and check["max_ms"] > 0):
        raise InvalidInput(f"{where}: a latency check needs 'max_ms' (milliseconds, above 0)")
    batch = check.get("batch", 1)
    if kind == "latency" and (batch != int(batch) or not 1 <= batch <= MAX_ROWS):
        raise InvalidInput(f"{where}: 'batch' must be a whole number from 1 to {MAX_ROWS}")
    if kind == "better_than":
        if not isinstance(check.get("dataset"), str):
            raise InvalidInput(f"{where}: better_than needs 'dataset' (name or name@version)")
        if check.setdefault("metric", "accuracy") not in SCORES:
            raise InvalidInput(f"{where}: 'metric' must be one of {', '.join(SCORES)}")
        check.setdefault("alias", "production")
        check.setdefault("label", "label")
        if not all(isinstance(check[k], str) for k in ("alias", "label")):
            raise InvalidInput(f"{where}: 'alias' and 'label' must be names")
    return check


def _bound(check: dict) -> bool:
    return _number(check.get("min")) or _number(check.get("max"))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def evaluate(
    service: ModelService, project: str, model_id: int, version: int, alias: str
) -> list[dict[str, Any]]:
    """Run every check that gates `alias` (the model's and the project's) for `version`."""
    hub = service.stores
    declared = [
        hub.models.settings(model_id)["gates"],
        hub.models.project_gates(hub.projects.get(project).id),
    ]
    checks = [
        c
        for gates in declared
        if gates and alias in gates.get("aliases", DEFAULT_ALIASES)
        for c in gates["checks"]
    ]
    return [_run(service, project, model_id, version, c) for c in checks]


def _run(
    service: ModelService, project: str, model_id: int, version: int, check: dict
) -> dict[str, Any]:
    row = service.stores.models.version(model_id, version)
    try:
        if check["type"] == "metric":
            ok, value, detail = _metric(row, check)
        elif check["type"] == "parity":
            ok, value, detail = _parity(row, check)
        elif check["type"] == "latency":
            ok, value, detail = _latency(service.predictor(model_id, version), check)
        else:
            ok, value, detail = _better_than(service, project, model_id, version, check)
    except InvalidInput as e:  # e.g. the dataset is gone: the check fails, saying why
        ok, value, detail = False, None, e.message
    return {**check, "ok": bool(ok), "value": value, "detail": detail}


def _metric(row: dict, check: dict) -> tuple[bool, Any, str]:
    """A version's metric: from the step that trained it and the evaluators of that model
    (registry.version_metrics), never another step of the run."""
    name, value = check["metric"], row["metrics"].get(check["metric"])
    if row.get("metrics_from") is None:
        return (
            False,
            None,
            (
                f"{name}: this version's metrics are unknown (registered before reef kept metrics "
                "per step, and its run's steps are gone); register it again from a run"
            ),
        )
    if value is None:
        steps = ", ".join(row["metrics_from"])
        return False, None, f"{name} was not recorded for this version (by steps {steps})"
    low, high = check.get("min"), check.get("max")
    if low is not None and value < low:
        return False, value, f"{name} {value:.4g} < {low} (min)"
    if high is not None and value > high:
        return False, value, f"{name} {value:.4g} > {high} (max)"
    return True, value, f"{name} {value:.4g} within bounds"


def _parity(row: dict, check: dict) -> tuple[bool, Any, str]:
    diff, recorded = row["parity_max_diff"], row["schema"].get("parity", {})
    if "max_diff" not in check and "rtol" in recorded:
        # the export checked |diff| <= atol + rtol * |reference| elementwise, or it failed
        rtol, atol = recorded["rtol"], recorded["atol"]
        return True, diff, f"ONNX parity within atol {atol:.0e} + rtol {rtol:.0e} x |reference|"
    tolerance = check.get("max_diff", recorded.get("tolerance", 1e-4))
    ok = diff <= tolerance
    return ok, diff, f"ONNX parity max |diff| {diff:.2e} {'<=' if ok else '>'} {tolerance:.0e}"


def _latency(predictor: Predictor, check: dict) -> tuple[bool, Any, str]:
    batch = int(check.get("batch", 1))
    rows = predictor.example_rows(batch)
    predictor.predict(rows)  # warm up
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        predictor.predict(rows)
        times.append((time.perf_counter() - started) * 1000)
    value = float(np.median(times))
    ok = value <= check["max_ms"]
    sign = "<=" if ok else ">"
    return ok, round(value, 3), f"median latency {value:.3f} ms {sign} {check['max_ms']} ms"


def _better_than(
    service: ModelService, project: str, model_id: int, version: int, check: dict
) -> tuple[bool, Any, str]:
    current = service.stores.models.aliases(model_id).get(check["alias"])
    if current is None or current == version:
        return True, None, f"no other version behind '{check['alias']}' to beat"
    name, _, ref = check["dataset"].partition("@")
    metric = check["metric"]
    ours = score(service, model_id, version, project, name, ref or None, check)
    theirs = score(service, model_id, current, project, name, ref or None, check)
    delta = float(check.get("min_delta", 0.0))
    ok = ours >= theirs + delta if SCORES[metric] else ours <= theirs - delta
    detail = f"{metric} on {check['dataset']}: v{version} {ours:.4f} vs v{current} {theirs:.4f}"
    return ok, {"candidate": ours, "current": theirs}, detail


def score(
    service: ModelService,
    model_id: int,
    version: int,
    project: str,
    dataset: str,
    ref: str | None,
    check: dict,
) -> float:
    """The version's accuracy (classifiers) or RMSE on a dataset version with labels."""
    predictor = service.predictor(model_id, version)
    label = check["label"]
    ds = service.stores.datasets.open(project, dataset, ref)
    missing = [c for c in [*predictor.columns, label] if c not in set(ds.schema.names)]
    if missing:
        raise InvalidInput(f"dataset {dataset} lacks columns {missing[:5]}")
    table = ds.to_table(columns=[*predictor.columns, label])
    keep = predictor.complete(table)
    table = table.filter(pa.array(keep))
    truth = table[label].to_numpy(zero_copy_only=False)
    if not table.num_rows:
        raise InvalidInput(f"dataset {dataset} has no complete rows to score on")
    chunks = range(0, table.num_rows, SCORE_CHUNK)
    y = np.concatenate(
        [predictor.run_inputs(predictor.table_inputs(table.slice(i, SCORE_CHUNK))) for i in chunks]
    )
    if check["metric"] == "accuracy":
        labels = np.array(predictor.labels(y) or [], dtype=object)
        return float(np.mean(labels == np.array([str(t) for t in truth], dtype=object)))
    return float(np.sqrt(np.mean((y[:, 0] - truth.astype(np.float64)) ** 2)))
