"""Models: the registry (versions, aliases, lineage) and in-process prediction."""

from __future__ import annotations

import json
import time
from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from reef.errors import InvalidInput
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post
from reef.store.people import Principal


def model_context(hub: HubDep, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    model_id = hub.models.model_id(p.id, name)
    versions = hub.models.versions(model_id)
    serving = hub.models.serving_version(model_id) if versions else None
    return {
        "project": p,
        "model": name,
        "versions": versions,
        "aliases": hub.models.aliases(model_id),
        "serving": serving,
    }


def predict(hub: HubDep, project: str, name: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or "rows" not in data:
        raise InvalidInput('send {"rows": [[...], ...]} (lists of numbers or objects by feature)')
    model_id = hub.models.model_id(hub.projects.get(project).id, name)
    alias = data.get("version")
    version = hub.models.serving_version(model_id, None if alias is None else str(alias))
    started = time.perf_counter()
    predictions = hub.model_service.predictor(model_id, version).predict(data["rows"])
    return {
        "predictions": predictions,
        "model_version": version,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def promote(hub: HubDep, who: Principal, project: str, name: str, version: int, alias: str) -> dict:
    model_id = hub.models.model_id(hub.projects.get(project).id, name)
    hub.models.set_alias(model_id, alias, version)
    hub.audit.record(who.name, "model.promote", f"model {name} v{version}", project, alias=alias)
    return {"model": name, "version": version, "alias": alias}


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/models", access="reporter")
def list_models_api(hub: HubDep, project: FromPath[str]) -> list[dict]:
    return hub.models.list(hub.projects.get(project).id)


@get("/api/projects/{project:str}/models/{model:str}", access="reporter")
def model_api(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> dict:
    return model_context(hub, project, model)


@get("/api/projects/{project:str}/models/{model:str}/versions/{version:int}", access="reporter")
def model_version_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str], version: FromPath[int]
) -> dict:
    return hub.models.version(hub.models.model_id(hub.projects.get(project).id, model), version)


@post(
    "/api/projects/{project:str}/models/{model:str}/versions/{version:int}/promote",
    access="maintainer",
    status_code=200,
)
def promote_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    version: FromPath[int],
    data: JSONBody[Any] = None,
) -> dict:
    alias = (data or {}).get("alias", "production") if isinstance(data, dict) else "production"
    return promote(hub, request.user, project, model, version, str(alias))


@post("/api/projects/{project:str}/models/{model:str}/predict", access="reporter", status_code=200)
def predict_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str], data: JSONBody[Any]
) -> dict:
    return predict(hub, project, model, data)


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/models/{model:str}", access="reporter")
def model_page(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> Template:
    ctx = model_context(hub, project, model)
    example = ""
    if ctx["versions"]:
        features = ctx["versions"][0]["schema"].get("inputs", {}).get("features", [])
        example = json.dumps([[0.0] * len(features)])
    return Template("model.html", context={**ctx, "example": example})


@post("/projects/{project:str}/models/{model:str}/predict", access="reporter", status_code=200)
def predict_page(hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form) -> Template:
    try:
        rows = json.loads(data.get("rows", ""))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"rows must be JSON: {e}") from None
    result = predict(hub, project, model, {"rows": rows})
    return Template("_prediction.html", context=result)


@post(
    "/projects/{project:str}/models/{model:str}/versions/{version:int}/promote", access="maintainer"
)
def promote_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    version: FromPath[int],
    data: Form,
) -> Redirect:
    promote(hub, request.user, project, model, version, data.get("alias") or "production")
    return Redirect(f"/projects/{project}/models/{model}")


ROUTES = [
    list_models_api,
    model_api,
    model_version_api,
    promote_api,
    predict_api,
    model_page,
    predict_page,
    promote_page,
]
