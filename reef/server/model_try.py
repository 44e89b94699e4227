"""Predictions by people on the model page: one input per feature, an answer in plain words
("malignant, 97% sure"), and a "right / wrong, the correct answer is ..." control that records
feedback and shows the live accuracy.

The inputs come from the serving version's schema: format 2 (reef/model_io.py) lists each
feature's role, typical value and categories; an older model lists feature names only (number
boxes, their typical value taken from the drift reference's middle quantile). A box left
empty takes its typical value, so a person may change one value and predict. These calls
are logged with source "try" and kept out of drift statistics.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.routes import Form, FromPath, HubDep, post

FIELD = "f:"  # form fields of features are named f:<feature>
MAX_BUTTONS = 6  # more classes than this: a dropdown instead of one button per class


def feature_inputs(version: dict[str, Any]) -> list[dict[str, Any]]:
    """One input per feature: {name, kind (number | choice | text), typical, choices}."""
    schema = version["schema"]
    features = schema["inputs"]["features"]
    if schema.get("format") == 2:
        return [_format2_input(f) for f in features]
    reference = {f["name"]: f for f in (version.get("reference") or {}).get("features", [])}
    return [
        {"name": n, "kind": "number", "typical": _middle(reference.get(n)), "choices": []}
        for n in features
    ]


def _format2_input(f: dict[str, Any]) -> dict[str, Any]:
    role = f.get("role", "number")
    kind = {"category": "choice", "text": "text"}.get(role, "number")
    if role == "boolean":
        kind, choices = "choice", ["1", "0"]
    else:
        choices = [str(c) for c in f.get("choices") or []]
    if role == "date":
        kind = "date"
    typical = f.get("typical")
    return {"name": f["name"], "kind": kind, "role": role, "typical": typical, "choices": choices}


def _middle(ref: dict[str, Any] | None) -> float | None:
    """The median of a feature from its reference quantile edges (None when unknown)."""
    edges = (ref or {}).get("edges") or []
    return round(edges[len(edges) // 2], 6) if edges else None


def row_from_form(inputs: list[dict[str, Any]], form: dict[str, str]) -> dict[str, Any]:
    """The row to predict: each feature's value as typed, or its typical value when empty."""
    row: dict[str, Any] = {}
    for f in inputs:
        text = (form.get(FIELD + f["name"]) or "").strip()
        if not text:
            if f["typical"] is None and f["kind"] == "number":
                raise InvalidInput(f"enter a value for {f['name']!r} (it has no typical value)")
            row[f["name"]] = f["typical"]
        elif f["kind"] == "number" or f.get("role") == "boolean":
            row[f["name"]] = _number(f["name"], text)
        else:
            row[f["name"]] = text
    return row


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{name!r} expects a number, not {text!r}") from None


def answer(result: dict[str, Any], classes: list[str] | None) -> dict[str, Any]:
    """The first prediction in plain words: "malignant, 97% sure" or "152.3"."""
    p = result["predictions"][0]
    if "label" in p and p.get("probabilities"):
        sure = max(p["probabilities"])
        others = [c for c in classes or [] if c != p["label"]]
        return {"label": p["label"], "sure": sure, "words": f"{p['label']}, {sure:.0%} sure",
                "others": others, "buttons": len(others) <= MAX_BUTTONS}  # fmt: skip
    value = (p.get("outputs") or [p.get("value")])[0]
    return {"label": value, "sure": None, "words": f"{value:.4g}", "others": [], "buttons": False}


def serving_version(hub: Hub, project: str, model: str) -> dict[str, Any]:
    model_id = hub.model_service.model_id(project, model)
    version = hub.models.serving_version(model_id)
    if version is None:
        raise InvalidInput(f"model {model!r} has no version to try yet")
    return hub.models.version(model_id, version)


def live_accuracy(hub: Hub, project: str, model: str) -> dict[str, Any] | None:
    """Right answers among the labelled predictions of the serving version, across sources."""
    hub.model_service.flush()
    model_id = hub.model_service.model_id(project, model)
    config = hub.model_service.monitor.config(model_id)
    rows = hub.model_service.monitor.stats_versions((project, model), model_id, config)
    labelled = [r for r in rows if r.get("labelled")]
    if not labelled:
        return None
    n = sum(r["labelled"] for r in labelled)
    right = sum(round(r["labelled"] * (r["accuracy"] or 0)) for r in labelled)
    return {"labelled": n, "right": right, "share": right / n}


@post("/projects/{project:str}/models/{model:str}/try", access="reporter", status_code=200)
def try_page(hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form) -> Template:
    """Predict the row typed into the per-feature form."""
    version = serving_version(hub, project, model)
    row = row_from_form(feature_inputs(version), data)
    result = hub.model_service.predict(project, model, [row], source="try")
    classes = version["schema"].get("outputs", {}).get("classes")
    ctx = {"project": project, "model": model, "result": result, "row": row,
           "answer": answer(result, classes)}  # fmt: skip
    return Template("_model_try_answer.html", context=ctx)


@post("/projects/{project:str}/models/{model:str}/try/feedback", access="reporter", status_code=200)
def feedback_page(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Template:
    """Record "right" (the predicted label) or "wrong, it is ..." for a try-it answer."""
    label = (data.get("label") or "").strip()
    if not label:
        raise InvalidInput("choose the correct answer")
    body = {"request_id": data.get("request_id"), "label": label}
    hub.model_service.add_feedback(project, model, body, request.user.name)
    groups = serving_version(hub, project, model)["schema"].get("outputs", {}).get("classes")
    accuracy = live_accuracy(hub, project, model) if groups else None  # numbers: no "right"
    ctx = {"label": label, "right": data.get("verdict") == "right", "accuracy": accuracy}
    return Template("_model_try_feedback.html", context=ctx)


ROUTES = [try_page, feedback_page]
