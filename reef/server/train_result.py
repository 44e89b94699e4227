"""The result page of a run: how good its model is, in plain words and pictures.

`/projects/{p}/runs/{id}/result` is where "Train a model" lands. While the run goes on, a
fragment polls itself (HTMX, every 2 s) and stops once the run has finished. It reads what
the evaluator logged: accuracy and the number of held-out rows ("right on 96 of 100
held-out rows"), or for numbers RMSE and R² ("typically off by 12.3"); the evaluator's
pictures (confusion matrix, predicted vs actual); a confusion matrix logged as JSON drawn as a
table; and which columns mattered most.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from reef.hub import Hub
from reef.server.routes import FromPath, HubDep, get
from reef.store.status import Status

PAGE = "/projects/{project:str}/runs/{run_id:int}/result"
PICTURES = (".png", ".svg")
MAX_IMPORTANCE = 10
STATUS_WORDS = {
    Status.QUEUED: "waiting for its turn",
    Status.RUNNING: "running",
    Status.SUCCEEDED: "finished",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}


def metric(metrics: dict[str, float], key: str) -> float | None:
    """`key` as the evaluator logged it: bare on one-step runs, `step/key` on others."""
    if key in metrics:
        return metrics[key]
    found = [v for k, v in metrics.items() if k.endswith("/" + key)]
    evaluated = [v for k, v in metrics.items() if k == f"evaluate/{key}"]
    chosen = evaluated or found
    return chosen[0] if chosen else None


def verdict(metrics: dict[str, float]) -> str | None:
    """How good the model is, in one plain sentence (None before the evaluator logged)."""
    rows = metric(metrics, "evaluated_rows")
    accuracy = metric(metrics, "accuracy")
    if accuracy is not None:
        if rows:
            right = round(accuracy * rows)
            return f"Right on {right} of {int(rows)} held-out rows ({accuracy:.0%})."
        return f"Right on {accuracy:.0%} of the held-out rows."
    rmse, r2 = metric(metrics, "rmse"), metric(metrics, "r2")
    if rmse is None:
        return None
    text = f"Typically off by {rmse:.3g} (RMSE) on the held-out rows"
    if r2 is not None:
        text += f"; explains {max(r2, 0):.0%} of the variation (R²)"
    return text + "."


def importance(metrics: dict[str, float], files: dict[str, Any]) -> list[dict[str, Any]]:
    """The columns that mattered most, largest first: from `importance/<column>` metrics or
    a `*importance*.json` artifact ({column: value} or [{"feature", "importance"}])."""
    found: dict[str, float] = {}
    for key, value in metrics.items():
        if "importance/" in key:
            found[key.split("importance/", 1)[1]] = value
    for name, data in files.items():
        if "importance" in name and not found:
            found = _importance_from(data)
    top = sorted(found.items(), key=lambda kv: -abs(kv[1]))[:MAX_IMPORTANCE]
    largest = max((abs(v) for _, v in top), default=0.0) or 1.0
    return [{"column": k, "value": v, "share": abs(v) / largest} for k, v in top]


def _importance_from(data: Any) -> dict[str, float]:
    if isinstance(data, dict) and isinstance(data.get("features"), list):
        data = data["features"]  # the evaluator's {"method", "score", "features": [...]}
    if isinstance(data, dict):
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
    if isinstance(data, list):
        out: dict[str, float] = {}
        for item in data:
            if isinstance(item, dict) and "feature" in item:
                value = item.get("importance", item.get("mean"))
                out[str(item["feature"])] = float(value) if value is not None else 0.0
        return out
    return {}


def result_context(hub: Hub, project: str, run_id: int) -> dict[str, Any]:
    p = hub.projects.get(project)
    run = hub.runs.run(run_id, p.id)
    metrics = hub.runs.latest_metrics(run_id)
    artifacts = hub.runs.artifacts(run_id)
    files = _json_artifacts(hub, artifacts)
    models = [
        {"model": m["name"], "version": v["version"]}
        for m in hub.models.list(p.id)
        for v in hub.models.versions(hub.models.model_id(p.id, m["name"]))
        if v["run_id"] == run_id
    ]
    matrix = next((d for n, d in files.items() if "confusion" in n and "matrix" in d), None)
    return {
        "project": p,
        "run": run,
        "status": STATUS_WORDS.get(run.status, run.status),
        "steps": hub.runs.steps(run_id),
        "verdict": verdict(metrics),
        "pictures": [
            a
            for a in artifacts
            if Path(a["name"]).suffix.lower() in PICTURES and "importance" not in a["name"]
        ],
        "matrix": matrix,
        "importance": importance(metrics, files),
        "models": models,
        "register": _registered_name(run.spec),
    }


def _registered_name(spec: dict) -> str | None:
    return next((s["register"] for s in spec.get("steps", []) if s.get("register")), None)


def _json_artifacts(hub: Hub, artifacts: list[dict]) -> dict[str, Any]:
    """Small JSON artifacts by name (the confusion matrix, importance), parsed."""
    out = {}
    for a in artifacts:
        if a["name"].endswith(".json") and a["size"] < 1 << 20:
            try:
                with hub.artifacts.open(a["digest"]) as f:
                    out[a["name"]] = json.load(f)
            except (OSError, ValueError):
                continue
    return out


@get(PAGE, access="reporter")
def result_page(
    request: HTMXRequest, hub: HubDep, project: FromPath[str], run_id: FromPath[int]
) -> Template:
    ctx = result_context(hub, project, run_id)
    partial = request.htmx and request.htmx.target == "result"
    return Template("_train_result.html" if partial else "train_result.html", context=ctx)


ROUTES = [result_page]
