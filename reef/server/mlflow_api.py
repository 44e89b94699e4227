"""MLflow's tracking protocol (`/api/2.0/mlflow/...`, also under `/ajax-api/`) over reef's
own stores, so unchanged MLflow scripts and autolog integrations log to reef.

An experiment is a reef project (experiment id = project id; MLflow's experiment "0" is
project `default`); a run is a reef script run whose params and metrics sit under the step
name `script`; artifacts go to the content-addressed store. Roles apply as everywhere: a
reporter reads, a developer logs to their own runs, a maintainer to anyone's; a project the
caller may not see answers RESOURCE_DOES_NOT_EXIST. See docs/mlflow.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import litestar
from litestar import Request
from litestar.enums import HttpMethod
from litestar.params import JSONBody

from reef.errors import Conflict, InvalidInput, NotFound
from reef.mlflow_search import parse_filter, parse_order_by
from reef.server.mlflow_wire import (
    HANDLERS,
    SCRIPT_STEP,
    EndpointNotFound,
    experiment_json,
    field,
    offset_of,
    page_token,
    project_for,
    run_for,
    run_id_of,
    run_info,
    run_json,
    run_writable,
    tag_list,
)
from reef.server.projects import create_project
from reef.server.routes import FromPath, HubDep
from reef.store.mlflow_tracking import STATUS_TO_REEF
from reef.store.people import check_name

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_RESULTS = 1000
Body = JSONBody[Any]


def mlroute(method: Callable[..., Any], suffix: str, prefixes: tuple[str, ...] = PREFIXES):
    """A route of MLflow's protocol under both prefixes: MLflow's error shape, 200 on success."""
    paths = [p + suffix for p in prefixes]
    return method(
        paths,
        opt={"access": "user"},
        sync_to_thread=True,
        exception_handlers=HANDLERS,
        include_in_schema=False,
        status_code=200,  # MLflow's client takes only 200 as success
    )


def mlget(suffix: str, **kw: Any):
    return mlroute(litestar.get, suffix, **kw)


def mlpost(suffix: str, **kw: Any):
    return mlroute(litestar.post, suffix, **kw)


def _query(request: Request) -> dict[str, Any]:
    return {k: v for k, v in request.query_params.items()}


# experiments -------------------------------------------------------------------------
@mlget("/experiments/get-by-name")
def get_experiment_by_name(request: Request, hub: HubDep) -> dict:
    name = field(_query(request), "experiment_name")
    pid = hub.mlflow.experiment_id_by_name(name)
    if pid is None:
        raise _no_experiment(name)
    project_for(hub, request.user, pid, "reporter")
    return {"experiment": experiment_json(hub, pid)}


def _no_experiment(name: str) -> Exception:
    return NotFound(f"Could not find experiment with name '{name}'")


@mlget("/experiments/get")
def get_experiment(request: Request, hub: HubDep) -> dict:
    eid = field(_query(request), "experiment_id")
    project = project_for(hub, request.user, eid, "reporter")
    return {"experiment": experiment_json(hub, hub.projects.id_of(project))}


@mlpost("/experiments/create")
def create_experiment(request: Request, hub: HubDep, data: Body = None) -> dict:
    name = field(data, "name")
    if not name.strip():
        raise InvalidInput("experiment name must not be empty")
    if hub.mlflow.experiment_id_by_name(name) is not None:
        raise Conflict(f"Experiment '{name}' already exists.")
    slug = _project_slug(hub, name)
    description = f"MLflow experiment '{name}'"
    project = create_project(hub, request.user, {"name": slug, "description": description})
    hub.mlflow.name_experiment(project.id, name)
    for key, value in tag_list(data.get("tags")).items():
        hub.mlflow.set_experiment_tag(project.id, key, value)
    return {"experiment_id": str(project.id)}


def _project_slug(hub: HubDep, name: str) -> str:
    """A URL-safe project name for an MLflow experiment name ('My exp/1' -> 'my-exp-1')."""
    base = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")[:60] or "experiment"
    slug, n = base, 1
    while hub.projects.exists(slug):
        n += 1
        slug = f"{base}-{n}"
    check_name("project", slug)
    return slug


@mlpost("/experiments/search")
def search_experiments(request: Request, hub: HubDep, data: Body = None) -> dict:
    data = data or {}
    limit = min(field(data, "max_results", int, required=False) or 1000, 50_000)
    offset = offset_of(data.get("page_token"))
    view = str(data.get("view_type") or "ACTIVE_ONLY")
    wanted = data.get("filter") or ""
    found = []
    for p in hub.projects.visible_to(request.user):
        e = experiment_json(hub, hub.projects.id_of(p["name"]))
        if _experiment_matches(e, view, wanted):
            found.append(e)
    page = found[offset : offset + limit]
    more = offset + limit < len(found)
    return {
        "experiments": page,
        **({"next_page_token": page_token(offset + limit)} if more else {}),
    }


def _experiment_matches(e: dict, view: str, wanted: str) -> bool:
    if view == "ACTIVE_ONLY" and e["lifecycle_stage"] != "active":
        return False
    if view == "DELETED_ONLY" and e["lifecycle_stage"] != "deleted":
        return False
    m = re.fullmatch(r"\s*(?:attribute\.)?name\s*(=|LIKE|ILIKE)\s*'(.*)'\s*", wanted, re.I)
    if not wanted.strip() or not m:
        return True
    pattern = re.escape(m[2]).replace("%", ".*").replace("_", ".")
    flags = re.I if m[1].upper() == "ILIKE" else 0
    return bool(re.fullmatch(pattern if m[1] != "=" else re.escape(m[2]), e["name"], flags))


@mlpost("/experiments/update")
def update_experiment(request: Request, hub: HubDep, data: Body = None) -> dict:
    project = project_for(hub, request.user, field(data, "experiment_id"), "maintainer")
    new_name = field(data, "new_name")
    if hub.mlflow.experiment_id_by_name(new_name) not in (None, hub.projects.id_of(project)):
        raise Conflict(f"Experiment '{new_name}' already exists.")
    hub.mlflow.name_experiment(hub.projects.id_of(project), new_name)
    return {}


@mlpost("/experiments/delete")
def delete_experiment(request: Request, hub: HubDep, data: Body = None) -> dict:
    return _set_stage(request, hub, data, "deleted")


@mlpost("/experiments/restore")
def restore_experiment(request: Request, hub: HubDep, data: Body = None) -> dict:
    return _set_stage(request, hub, data, "active")


def _set_stage(request: Request, hub: HubDep, data: Any, stage: str) -> dict:
    """MLflow's delete hides an experiment (restorable); the reef project stays."""
    project = project_for(hub, request.user, field(data, "experiment_id"), "owner")
    hub.mlflow.set_experiment_stage(hub.projects.id_of(project), stage)
    hub.audit.record(request.user.name, f"experiment.{stage}", f"project {project}", project)
    return {}


@mlpost("/experiments/set-experiment-tag")
def set_experiment_tag(request: Request, hub: HubDep, data: Body = None) -> dict:
    project = project_for(hub, request.user, field(data, "experiment_id"), "developer")
    hub.mlflow.set_experiment_tag(
        hub.projects.id_of(project), field(data, "key"), str(field(data, "value"))
    )
    return {}


@mlpost("/experiments/delete-experiment-tag")
def delete_experiment_tag(request: Request, hub: HubDep, data: Body = None) -> dict:
    project = project_for(hub, request.user, field(data, "experiment_id"), "developer")
    hub.mlflow.delete_experiment_tag(hub.projects.id_of(project), field(data, "key"))
    return {}


# runs ----------------------------------------------------------------------------------
@mlpost("/runs/create")
def create_run(request: Request, hub: HubDep, data: Body = None) -> dict:
    data = data or {}
    project = project_for(hub, request.user, data.get("experiment_id") or "0", "developer")
    tags = tag_list(data.get("tags"))
    name = data.get("run_name") or tags.get("mlflow.runName")
    run_id = hub.runs.create_script_run(
        hub.projects.id_of(project),
        name,
        {},
        request.user.name,
        audit=lambda cur, rid: hub.audit.record_in(
            cur, request.user.name, "run.create", f"run {rid}", project, name=name, via="mlflow"
        ),
    )
    hub.mlflow.set_run_tags(run_id, tags)
    if start := field(data, "start_time", int, required=False):
        hub.runs.update_run(run_id, started_at=_when(start))  # the client's clock (imports)
    return {"run": run_json(hub, hub.runs.run(run_id))}


@mlget("/runs/get")
def get_run(request: Request, hub: HubDep) -> dict:
    run, _ = run_for(hub, request.user, run_id_of(_query(request)))
    hub.runs.settle_metrics()
    return {"run": run_json(hub, run)}


@mlpost("/runs/update")
def update_run(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    fields: dict[str, Any] = {}
    if status := (data or {}).get("status"):
        if status not in STATUS_TO_REEF:
            raise InvalidInput(f"parameter 'status' must be one of {', '.join(STATUS_TO_REEF)}")
        fields["status"] = STATUS_TO_REEF[status]
        if status in ("FINISHED", "FAILED", "KILLED"):
            end = field(data, "end_time", int, required=False)
            fields["finished_at"] = _when(end) if end else _when(int(time.time() * 1000))
        else:
            fields["finished_at"] = None
    if name := (data or {}).get("run_name"):
        fields["name"] = str(name)
    if fields:
        hub.runs.update_run(run_id, **fields)
    return {"run_info": run_info(hub, hub.runs.run(run_id))}


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


@mlpost("/runs/delete")
def delete_run(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    hub.mlflow.set_deleted(run_id, True)
    return {}


@mlpost("/runs/restore")
def restore_run(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    hub.mlflow.set_deleted(run_id, False)
    return {}


@mlpost("/runs/log-metric")
def log_metric(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    _log(hub, run_id, [_metric(data)], {}, {})
    return {}


@mlpost("/runs/log-parameter")
def log_param(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    _log(hub, run_id, [], {field(data, "key"): str(field(data, "value", required=False) or "")}, {})
    return {}


@mlpost("/runs/set-tag")
def set_tag(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    _log(hub, run_id, [], {}, {field(data, "key"): str(field(data, "value", required=False) or "")})
    return {}


@mlpost("/runs/delete-tag")
def delete_tag(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    key = field(data, "key")
    if not hub.mlflow.delete_run_tag(run_id, key):
        raise NotFound(f"No tag with name: {key} in run with id {run_id}")
    return {}


@mlpost("/runs/log-batch")
def log_batch(request: Request, hub: HubDep, data: Body = None) -> dict:
    """MLflow's limits (1000 metrics, 100 params, 100 tags, 1000 in all) are checked before
    anything is stored, so an oversized batch stores nothing."""
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    metrics, params, tags = (data or {}).get("metrics") or [], data.get("params"), data.get("tags")
    if not isinstance(metrics, list):
        raise InvalidInput("parameter 'metrics' must be a list")
    params_d, tags_d = tag_list(params, "params"), tag_list(tags, "tags")
    for what, got, limit in (
        ("metrics", len(metrics), MAX_METRICS),
        ("params", len(params_d), MAX_PARAMS),
        ("tags", len(tags_d), MAX_TAGS),
        ("metrics, params and tags", len(metrics) + len(params_d) + len(tags_d), MAX_ENTITIES),
    ):
        if got > limit:
            raise InvalidInput(
                f"A batch logging request can contain at most {limit} {what}. Got {got} {what}."
            )
    _log(hub, run_id, [_metric(m) for m in metrics], params_d, tags_d)
    return {}


def _metric(data: Any) -> tuple[str, float, int, float]:
    """(key, value, step, seconds) of one MLflow metric."""
    key = field(data, "key")
    raw = data.get("value")
    value = float("nan") if raw in ("NaN", "nan") else field(data, "value", float)
    ms = field(data, "timestamp", int, required=False) or int(time.time() * 1000)
    return key, value, field(data, "step", int, required=False) or 0, ms / 1000


def _log(
    hub: HubDep,
    run_id: int,
    metrics: list[tuple[str, float, int, float]],
    params: dict[str, str],
    tags: dict[str, str],
) -> None:
    """Params are immutable in MLflow: a new value for a logged key is refused, before any
    of the batch is stored."""
    if params:
        have = hub.mlflow.param_values(run_id, SCRIPT_STEP)
        for key, value in params.items():
            if key in have and have[key] != value:
                raise InvalidInput(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{have[key]}' for run ID='{run_id}'. Attempted logging "
                    f"new value '{value}'."
                )
        hub.runs.log_params(run_id, SCRIPT_STEP, params)
    if tags:
        hub.mlflow.set_run_tags(run_id, tags)
        if name := tags.get("mlflow.runName"):
            hub.runs.update_run(run_id, name=name)
    if metrics:
        keys, values, steps, ts = (list(c) for c in zip(*metrics, strict=True))
        values = [None if v != v else v for v in values]  # NaN: stored as a missing value
        columns = {"key": keys, "value": values, "step": steps, "ts": ts}
        hub.runs.log_metric_columns(run_id, "", columns)  # a script run: bare keys


@mlpost("/runs/search")
def search_runs(request: Request, hub: HubDep, data: Body = None) -> dict:
    data = data or {}
    ids = data.get("experiment_ids") or []
    if not isinstance(ids, list):
        raise InvalidInput("parameter 'experiment_ids' must be a list")
    projects = [project_for(hub, request.user, e, "reporter") for e in ids]
    limit = field(data, "max_results", int, required=False) or 1000
    if not 0 < limit <= 50_000:
        raise InvalidInput(f"Invalid value {limit} for parameter 'max_results' supplied.")
    offset = offset_of(data.get("page_token"))
    found = hub.mlflow.search_runs(
        [hub.projects.id_of(p) for p in projects],
        parse_filter(data.get("filter")),
        parse_order_by(data.get("order_by")),
        str(data.get("run_view_type") or "ACTIVE_ONLY"),
        limit + 1,
        offset,
    )
    hub.runs.settle_metrics()  # once for the page, before any run's metrics are read
    runs = [run_json(hub, hub.runs.run(i)) for i in found[:limit]]
    more = {"next_page_token": page_token(offset + limit)} if len(found) > limit else {}
    return {"runs": runs, **more}


@mlget("/metrics/get-history")
def get_metric_history(request: Request, hub: HubDep) -> dict:
    q = _query(request)
    run, _ = run_for(hub, request.user, run_id_of(q))
    key = field(q, "metric_key")
    limit = field(q, "max_results", int, required=False) or 25_000
    if not 0 < limit <= 25_000:
        raise InvalidInput(f"Invalid value {limit} for parameter 'max_results' supplied.")
    offset = offset_of(q.get("page_token"))
    hub.runs.settle_metrics()
    rows = hub.mlflow.metric_history(run.id, key, limit + 1, offset)
    more = {"next_page_token": page_token(offset + limit)} if len(rows) > limit else {}
    return {"metrics": rows[:limit], **more}


@mlpost("/runs/log-inputs")
def log_inputs(request: Request, hub: HubDep, data: Body = None) -> dict:
    """Datasets a run read: kept as tags `mlflow.input.<name>` = digest (a reef dataset of
    that name is linked in the run's tags as `reef.dataset`)."""
    run, project = run_for(hub, request.user, run_id_of(data), write=True)
    tags = {}
    for item in (data or {}).get("datasets") or []:
        ds = (item or {}).get("dataset") or {}
        name = field(ds, "name")
        tags[f"mlflow.input.{name}"] = str(ds.get("digest") or "")
        known = {d["name"] for d in hub.catalog.datasets(hub.projects.id_of(project))}
        if name in known:
            tags["reef.dataset"] = name
    hub.mlflow.set_run_tags(run.id, tags)
    return {}


@mlpost("/runs/outputs")
def log_outputs(request: Request, hub: HubDep, data: Body = None) -> dict:
    run_id = run_id_of(data)
    run_writable(hub, request.user, run_id)
    models = [str(field(m, "model_id")) for m in (data or {}).get("models") or []]
    if models:
        hub.mlflow.set_run_tags(run_id, {"mlflow.loggedModels": ",".join(models)})
    return {}


@mlget("/server-info", prefixes=("/api/3.0/mlflow",))
def server_info() -> dict:
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


@litestar.route(
    [
        *(p + "/{rest:path}" for p in PREFIXES),
        "/api/3.0/mlflow/{rest:path}",
    ],
    http_method=[
        HttpMethod.GET,
        HttpMethod.POST,
        HttpMethod.PATCH,
        HttpMethod.DELETE,
        HttpMethod.PUT,
    ],
    opt={"access": "public"},
    sync_to_thread=False,
    exception_handlers=HANDLERS,
    include_in_schema=False,
)
def unknown_endpoint(request: Request, rest: FromPath[str]) -> None:
    raise EndpointNotFound(f"No API endpoint for {request.method} {request.url.path}")


ROUTES = [
    get_experiment_by_name,
    get_experiment,
    create_experiment,
    search_experiments,
    update_experiment,
    delete_experiment,
    restore_experiment,
    set_experiment_tag,
    delete_experiment_tag,
    create_run,
    get_run,
    update_run,
    delete_run,
    restore_run,
    log_metric,
    log_param,
    set_tag,
    delete_tag,
    log_batch,
    search_runs,
    get_metric_history,
    log_inputs,
    log_outputs,
    server_info,
    unknown_endpoint,
]
