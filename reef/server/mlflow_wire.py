"""MLflow's wire rules: its error shape, its JSON for experiments and runs, page tokens, and
the checks of who may touch which experiment or run. The routes are in mlflow_api.py."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from reef.errors import InvalidInput, NotFound, PermissionDenied, ReefError
from reef.hub import Hub
from reef.store.mlflow_tracking import STATUS_FROM_REEF
from reef.store.people import Principal
from reef.store.projects import rank
from reef.store.runs import Run

log = logging.getLogger("reef.server")
DEFAULT_EXPERIMENT = "default"  # MLflow's experiment "0" is this project
SCRIPT_STEP = "script"  # a script run's params and artifacts sit under this step name
CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
}


class EndpointNotFound(NotFound):
    code = "ENDPOINT_NOT_FOUND"


def error_body(status: int, message: str, code: str | None = None) -> Response:
    code = code or CODES.get(status, "INTERNAL_ERROR")
    status = 400 if status == 409 else status  # MLflow answers an existing name with 400
    return Response({"error_code": code, "message": message}, status_code=status)


def reef_error(request: Request, exc: ReefError) -> Response:
    return error_body(exc.status, exc.message, getattr(exc, "code", None))


def http_error(request: Request, exc: HTTPException) -> Response:
    return error_body(exc.status_code, str(exc.detail))


def server_error(request: Request, exc: Exception) -> Response:
    ref = uuid.uuid4().hex[:12]
    log.exception("mlflow endpoint %s failed (request %s)", request.url.path, ref)
    return error_body(500, f"internal error (request {ref})")


HANDLERS: ExceptionHandlersMap = {
    ReefError: reef_error,
    HTTPException: http_error,
    Exception: server_error,
}


# fields -------------------------------------------------------------------------------
def field(data: Any, name: str, kind: type = str, required: bool = True) -> Any:
    """A field of a request body or query, checked; names the field when it is wrong."""
    value = data.get(name) if isinstance(data, dict) else None
    if value is None:
        if required:
            raise InvalidInput(f"Missing value for required parameter '{name}'")
        return None
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter '{name}' must be an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter '{name}' must be a number, got {value!r}") from None
    if not isinstance(value, kind):
        raise InvalidInput(f"parameter '{name}' must be a {kind.__name__}")
    return value


def run_id_of(data: Any) -> int:
    raw = (data or {}).get("run_id") or (data or {}).get("run_uuid")
    if raw is None:
        raise InvalidInput("Missing value for required parameter 'run_id'")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"Run with id={raw} not found") from None


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"invalid page_token {token!r}") from None
    if offset < 0:
        raise InvalidInput(f"invalid page_token {token!r}")
    return offset


# access -------------------------------------------------------------------------------
def project_for(hub: Hub, who: Principal, experiment_id: Any, role: str) -> str:
    """The project behind an experiment id, if `who` holds `role` there. A project the
    caller may not see does not exist, as MLflow would say."""
    if str(experiment_id) == "0":
        return default_project(hub, who, role)
    try:
        pid = int(experiment_id)
    except (TypeError, ValueError):
        raise NotFound(f"No Experiment with id={experiment_id} exists") from None
    name = hub.project_name(pid)
    if name is None:
        raise NotFound(f"No Experiment with id={experiment_id} exists")
    check_role(hub, who, name, role, f"No Experiment with id={experiment_id} exists")
    return name


def default_project(hub: Hub, who: Principal, role: str) -> str:
    if not hub.projects.exists(DEFAULT_EXPERIMENT):
        from reef.server.projects import create_project

        description = "MLflow's Default experiment"
        create_project(hub, who, {"name": DEFAULT_EXPERIMENT, "description": description})
    check_role(hub, who, DEFAULT_EXPERIMENT, role, "No Experiment with id=0 exists")
    return DEFAULT_EXPERIMENT


def check_role(hub: Hub, who: Principal, project: str, role: str, hidden: str) -> None:
    held = hub.projects.role_of(project, who)
    if held is None:
        raise NotFound(hidden)
    if rank(held) < rank(role):
        raise PermissionDenied(f"this needs the {role} role in project '{project}'; you are {held}")


def run_for(hub: Hub, who: Principal, run_id: int, write: bool = False) -> tuple[Run, str]:
    """A run `who` may read (or write: its creator as a developer, else a maintainer)."""
    try:
        run = hub.runs.run(run_id)
    except NotFound:
        raise NotFound(f"Run with id={run_id} not found") from None
    project = hub.project_name(run.project_id)
    check_role(hub, who, project, "reporter", f"Run with id={run_id} not found")
    if write:
        own = run.created_by == who.name
        check_role(hub, who, project, "developer" if own else "maintainer", "")
        hub.script_runs.touch(run.id)  # a script logging through MLflow is alive
    return run, project


def run_writable(hub: Hub, who: Principal, run_id: int) -> str:
    """What `run_for(..., write=True)` checks, without reading the run: its project and
    creator are kept a while (they never change), so a log-batch or an artifact upload asks
    the database nothing to be let in. Returns the project."""
    try:
        project, creator = hub.runs.owner(run_id)
    except NotFound:
        raise NotFound(f"Run with id={run_id} not found") from None
    check_role(hub, who, project, "reporter", f"Run with id={run_id} not found")
    check_role(hub, who, project, "developer" if creator == who.name else "maintainer", "")
    hub.script_runs.touch(run_id)  # a script logging through MLflow is alive
    return project


# JSON -----------------------------------------------------------------------------------
def experiment_json(hub: Hub, project_id: int) -> dict[str, Any]:
    e = hub.mlflow.experiment(project_id)
    return {
        "experiment_id": str(project_id),
        "name": e["name"],
        "artifact_location": f"mlflow-artifacts:/{project_id}",
        "lifecycle_stage": e["lifecycle_stage"],
        "creation_time": e["created"],
        "last_update_time": e["updated"],
        "tags": [{"key": k, "value": v} for k, v in e["tags"].items()],
    }


def run_info(hub: Hub, run: Run) -> dict[str, Any]:
    start = run.started_at or run.created_at
    info = {
        "run_id": str(run.id),
        "run_uuid": str(run.id),
        "run_name": run.name or "",
        "experiment_id": str(run.project_id),
        "user_id": run.created_by,
        "status": STATUS_FROM_REEF.get(run.status, "RUNNING"),
        "start_time": int(start.timestamp() * 1000) if start else None,
        "artifact_uri": f"mlflow-artifacts:/{run.project_id}/{run.id}/artifacts",
        "lifecycle_stage": "deleted" if hub.mlflow.is_deleted(run.id) else "active",
    }
    if run.finished_at is not None:
        info["end_time"] = int(run.finished_at.timestamp() * 1000)
    return info


def run_json(hub: Hub, run: Run) -> dict[str, Any]:
    """A run in MLflow's shape; its metrics as last settled (callers settle once)."""
    params: dict[str, Any] = {}
    for p in hub.runs.params(run.id):
        value = p["value"]
        params.setdefault(p["key"], value if isinstance(value, str) else json.dumps(value))
    tags = hub.mlflow.run_tags(run.id)
    if run.name:
        tags.setdefault("mlflow.runName", run.name)
    return {
        "info": run_info(hub, run),
        "data": {
            "metrics": hub.mlflow.latest_metrics(run.id),
            "params": [{"key": k, "value": v} for k, v in sorted(params.items())],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        "inputs": {"dataset_inputs": []},
    }


def tag_list(items: Any, name: str = "tags") -> dict[str, str]:
    """MLflow's [{key, value}] list as a dict, checked."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidInput(f"parameter '{name}' must be a list of {{key, value}}")
    out = {}
    for item in items:
        key = field(item, "key")
        out[key] = str(field(item, "value", required=False) or "")
    return out
