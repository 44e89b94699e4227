"""MLflow 3's logged-model calls, which `mlflow.<flavor>.log_model` makes: create (PENDING),
upload the files to `mlflow-artifacts:/<experiment>/models/<model_id>/artifacts`, finalize
(READY), and record the model as an output of its run."""

from __future__ import annotations

from typing import Any

import litestar
from litestar import Request
from litestar.params import JSONBody

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.mlflow_api import mlget, mlpost, mlroute
from reef.server.mlflow_wire import (
    check_role,
    field,
    offset_of,
    page_token,
    project_for,
    run_for,
    tag_list,
)
from reef.server.routes import FromPath, HubDep
from reef.store.people import Principal

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
Body = JSONBody[Any]


def model_for(hub: Hub, who: Principal, model_id: str, role: str) -> dict[str, Any]:
    """A logged model in a project where `who` holds `role` (else: it does not exist)."""
    from reef.errors import NotFound

    try:
        model = hub.logged_models.get(model_id)
    except NotFound:
        raise NotFound(f"Logged model with ID '{model_id}' not found.") from None
    project = hub.project_name(model["project_id"])
    check_role(hub, who, project, role, f"Logged model with ID '{model_id}' not found.")
    return model


def model_json(model: dict[str, Any]) -> dict[str, Any]:
    pid, mid = model["project_id"], model["model_id"]
    return {
        "info": {
            "model_id": mid,
            "experiment_id": str(pid),
            "name": model["name"],
            "artifact_uri": f"mlflow-artifacts:/{pid}/models/{mid}/artifacts",
            "creation_timestamp_ms": model["created_ms"],
            "last_updated_timestamp_ms": model["updated_ms"],
            "status": model["status"],
            "model_type": model["model_type"] or "",
            "source_run_id": str(model["run_id"]) if model["run_id"] else "",
            "tags": [{"key": k, "value": v} for k, v in model["tags"].items()],
        },
        "data": {
            "params": [{"key": k, "value": v} for k, v in model["params"].items()],
            "metrics": [],
        },
    }


@mlpost("/logged-models")
def create_logged_model(request: Request, hub: HubDep, data: Body = None) -> dict:
    data = data or {}
    project = project_for(hub, request.user, field(data, "experiment_id"), "developer")
    run_id = None
    if raw := data.get("source_run_id"):
        run, run_project = run_for(hub, request.user, int(raw), write=True)
        if run_project != project:
            raise InvalidInput(f"run {raw} is not in experiment {data['experiment_id']}")
        run_id = run.id
    mid = hub.logged_models.create(
        hub.projects.id_of(project),
        run_id,
        str(data.get("name") or "model"),
        data.get("model_type"),
        tag_list(data.get("params"), "params"),
        tag_list(data.get("tags")),
        request.user.name,
    )
    return {"model": model_json(hub.logged_models.get(mid))}


@mlget("/logged-models/{model_id:str}")
def get_logged_model(request: Request, hub: HubDep, model_id: FromPath[str]) -> dict:
    return {"model": model_json(model_for(hub, request.user, model_id, "reporter"))}


@mlroute(litestar.patch, "/logged-models/{model_id:str}")
def finalize_logged_model(
    request: Request, hub: HubDep, model_id: FromPath[str], data: Body = None
) -> dict:
    model_for(hub, request.user, model_id, "developer")
    status = field(data, "status")
    if status not in STATUSES:
        raise InvalidInput(f"parameter 'status' must be one of {', '.join(STATUSES)}")
    hub.logged_models.update(model_id, status=status)
    return {"model": model_json(hub.logged_models.get(model_id))}


@mlroute(litestar.patch, "/logged-models/{model_id:str}/tags")
def set_logged_model_tags(
    request: Request, hub: HubDep, model_id: FromPath[str], data: Body = None
) -> dict:
    model_for(hub, request.user, model_id, "developer")
    hub.logged_models.update(model_id, tags=tag_list((data or {}).get("tags")))
    return {}


@mlroute(litestar.delete, "/logged-models/{model_id:str}/tags/{tag_key:str}")
def delete_logged_model_tag(
    request: Request, hub: HubDep, model_id: FromPath[str], tag_key: FromPath[str]
) -> dict:
    model_for(hub, request.user, model_id, "developer")
    hub.logged_models.delete_tag(model_id, tag_key)
    return {}


@mlpost("/logged-models/{model_id:str}/params")
def log_logged_model_params(
    request: Request, hub: HubDep, model_id: FromPath[str], data: Body = None
) -> dict:
    model_for(hub, request.user, model_id, "developer")
    hub.logged_models.update(model_id, params=tag_list((data or {}).get("params"), "params"))
    return {}


@mlroute(litestar.delete, "/logged-models/{model_id:str}")
def delete_logged_model(request: Request, hub: HubDep, model_id: FromPath[str]) -> dict:
    model_for(hub, request.user, model_id, "developer")
    hub.logged_models.delete(model_id)
    return {}


@mlpost("/logged-models/search")
def search_logged_models(request: Request, hub: HubDep, data: Body = None) -> dict:
    data = data or {}
    ids = [project_for(hub, request.user, e, "reporter") for e in data.get("experiment_ids") or []]
    limit = field(data, "max_results", int, required=False) or 100
    offset = offset_of(data.get("page_token"))
    found = hub.logged_models.in_projects([hub.projects.id_of(p) for p in ids], limit + 1, offset)
    models = [model_json(hub.logged_models.get(m)) for m in found[:limit]]
    more = {"next_page_token": page_token(offset + limit)} if len(found) > limit else {}
    return {"models": models, **more}


ROUTES = [
    search_logged_models,
    create_logged_model,
    get_logged_model,
    finalize_logged_model,
    set_logged_model_tags,
    delete_logged_model_tag,
    log_logged_model_params,
    delete_logged_model,
]
