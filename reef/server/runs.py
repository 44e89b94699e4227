"""Runs: the run page (live status, log, metric chart), control, and what steps report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from reef.errors import Conflict, NotFound, PermissionDenied
from reef.hub import Hub
from reef.pipeline import upstream
from reef.server import dag
from reef.server.comments import Comment, NewComment, PostedComment, as_comments, post_comment
from reef.server.disposition import attachment, inline
from reef.server.file_answers import file_answer
from reef.server.modules import start_module_run
from reef.server.rerun_diff import rerun_diff, rerun_diff_api
from reef.server.routes import (
    Form,
    FromPath,
    FromQuery,
    HubDep,
    JSONBody,
    Offset,
    get,
    post,
)
from reef.server.run_answers import (
    AllLogs,
    ArtifactStored,
    CurrentStatus,
    MetricHistory,
    RunCreated,
    RunDetail,
    RunId,
    RunRecord,
    RunState,
    StepLog,
    Stored,
    run_detail,
)
from reef.server.run_reports import (
    ArtifactUpload,
    MetricPost,
    NewRun,
    ParamsPost,
    RunEnd,
    metric_columns,
)
from reef.store.db import now
from reef.store.people import Principal
from reef.store.projects import rank

LOG_TAIL_BYTES = 64_000


def run_dag(steps: list) -> str:
    return dag.svg(
        [
            dag.Node(
                s.name,
                s.module.split("/", 1)[1],
                tuple(upstream(s.inputs)),
                s.status,
                f"{s.duration_s:.1f}s" if s.duration_s else "",
            )
            for s in steps
        ]
    )


def run_context(hub: Hub, project: str, run_id: int) -> dict[str, Any]:
    p = hub.projects.get(project)
    run = hub.runs.run(run_id, p.id)
    workers = hub.remote.leases.of_run(run_id)
    steps = [replace(s, worker=workers.get(s.id)) for s in hub.runs.steps(run_id)]
    return {
        "project": p,
        "run": run,
        "steps": steps,
        "dag": run_dag(steps),
        "params": (params := hub.runs.params(run_id)),
        "logged_params": [
            p
            for p in params
            if p["key"] not in next((s.params for s in steps if s.name == p["step"]), {})
        ],
        "metrics": hub.runs.latest_metrics(run_id),
        "artifacts": [{**a, "visual": visual(a["name"])} for a in hub.runs.artifacts(run_id)],
        "comments": hub.runs.comments(run_id),
        "models": hub.models.run_versions(run_id),
        "rerun": rerun_diff(hub, run),
        "tags": hub.mlflow.run_tags(run_id),
        "children": hub.mlflow.children(run_id),
        "origin": hub.triggers.store.origin(run_id),
    }


def read_log(hub: Hub, run_id: int, step: str, offset: int = 0) -> tuple[str, int]:
    """Log text of a step from byte `offset` (the last 64 kB when offset is 0), and the end."""
    path: Path = hub.orchestrator.log_path(run_id, step)
    if not path.exists():
        return "", 0
    size = path.stat().st_size
    start = max(offset, size - LOG_TAIL_BYTES if offset == 0 else offset)
    with path.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace"), size


def step_logs(hub: Hub, run_id: int) -> dict[str, str]:
    return {s.name: read_log(hub, run_id, s.name)[0] for s in hub.runs.steps(run_id)}


def logs_with_ends(hub: Hub, run_id: int) -> tuple[dict[str, str], dict[str, int]]:
    """Each step's log tail, and the byte offset it ends at (where the live stream goes on)."""
    read = {s.name: read_log(hub, run_id, s.name) for s in hub.runs.steps(run_id)}
    return {k: v[0] for k, v in read.items()}, {k: v[1] for k, v in read.items()}


def rerun(hub: Hub, who: Principal, project: str, run_id: int) -> int:
    """A new run from the pinned spec of `run_id`: same commits, dataset versions, params and
    seed. Every step runs again (never from the step cache): that is what a re-run checks."""
    run = hub.runs.run_in(project, run_id)
    spec = {**run.spec, "cache": False}
    return hub.orchestrator.start(project, run.pipeline, spec, who, rerun_of=run.id)


def as_own_step(who: Principal, step: str) -> str:
    """The step a report is filed under; a step's token files only under its own step (a
    version's metrics are its training and evaluator steps': no other step may add to them)."""
    if who.step is not None and step != who.step:
        raise PermissionDenied(f"this token reports as step '{who.step}', not as '{step}'")
    return step


def start_script_run(hub: Hub, who: Principal, project: str, data: NewRun) -> int:
    """A run that a script or notebook reports to through the SDK (no steps to execute)."""
    name, params = data.name, data.params
    return hub.runs.create_script_run(
        hub.projects.id_of(project),
        name,
        params,
        who.name,
        audit=lambda cur, run_id: hub.audit.record_in(
            cur, who.name, "run.create", f"run {run_id}", project, name=name
        ),
    )


def require_run_writer(hub: Hub, who: Principal, project: str, run_id: int) -> None:
    """Only the run's creator, a maintainer or an owner writes to a run or finishes it (a
    step's run token reaches only its own run: the guard checked that)."""
    creator = hub.runs.check_in(project, run_id)
    if who.via == "run" or who.name == creator:
        return
    if rank(hub.projects.role_of(project, who)) < rank("maintainer"):
        raise PermissionDenied(
            f"run {run_id} was started by {creator}: only they or a maintainer may write to it"
        )


def finish_script_run(
    hub: Hub, who: Principal, project: str, run_id: int, data: RunEnd
) -> RunState:
    require_run_writer(hub, who, project, run_id)
    run = hub.runs.run_in(project, run_id)
    status = data.status
    if run.spec.get("steps"):  # the pinned spec lists a pipeline's steps; a script's is empty
        raise Conflict(f"run {run_id} runs a pipeline; it finishes by itself")
    if run.finished:
        raise Conflict(f"run {run_id} already {run.status}")
    if data.columns is not None or data.points is not None:  # the SDK's last points
        hub.runs.log_metric_columns(run_id, data.step or "", metric_columns(data))
    hub.runs.update_run(
        run_id,
        status=status,
        finished_at=now(),
        error=data.error if status == "failed" else None,
    )
    return RunState(run_id, status)


def add_comment(hub: Hub, who: Principal, project: str, run_id: int, text: str) -> PostedComment:
    return PostedComment(**post_comment(hub, who, project, "run", str(run_id), text))


def record(hub: Hub, project: str, run_id: int) -> RunRecord:
    """Everything that went into a run: the pinned spec and each step's environment."""
    run = hub.runs.run_in(project, run_id)
    return RunRecord(
        run=run.id,
        project=project,
        pipeline=run.pipeline,
        spec=run.spec,
        created_by=run.created_by,
        created_at=run.created_at,
        steps=[s.record or {"step": s.name, "note": "not started"} for s in hub.runs.steps(run_id)],
    )


# API ---------------------------------------------------------------------------------
@post("/api/projects/{project:str}/runs", access="developer", status_code=201)
def create_run_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[NewRun]
) -> RunCreated:
    """With `module`: run that module (one step). Without: a run a script reports to."""
    if data.module is not None:
        return RunCreated(
            start_module_run(hub, request.user, project, msgspec.structs.asdict(data))
        )
    run_id = start_script_run(hub, request.user, project, data)
    hub.script_runs.touch(run_id)
    return RunCreated(run_id, hub.script_runs.interval)


@post("/api/projects/{project:str}/runs/{run_id:int}/heartbeat", access="developer")
def heartbeat_api(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> CurrentStatus:
    """A script run is still alive (the SDK sends this while a run is open); its status, so a
    script learns when its run was ended without it."""
    hub.runs.check_in(project, run_id)
    hub.script_runs.touch(run_id)
    return CurrentStatus(hub.runs.run(run_id).status)


@post("/api/projects/{project:str}/runs/{run_id:int}/finish", access="developer", status_code=200)
def finish_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    data: JSONBody[RunEnd | None] = None,
) -> RunState:
    """End a script run (`succeeded` unless told); a pipeline run ends by itself."""
    return finish_script_run(hub, request.user, project, run_id, data or RunEnd())


@get("/api/projects/{project:str}/runs/{run_id:int}/comments", access="reporter")
def comments_api(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> list[Comment]:
    hub.runs.run_in(project, run_id)
    return as_comments(hub.runs.comments(run_id))


@post("/api/projects/{project:str}/runs/{run_id:int}/comments", access="reporter", status_code=201)
def comment_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    data: JSONBody[NewComment],
) -> PostedComment:
    return add_comment(hub, request.user, project, run_id, data.text)


@get("/api/projects/{project:str}/runs/{run_id:int}/record", access="reporter")
def record_api(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> Response[RunRecord]:
    """The run's record as a JSON file to keep (Content-Disposition: attachment)."""
    body = record(hub, project, run_id)
    return Response(
        body,
        headers={"Content-Disposition": attachment(f"reef-{project}-run-{run_id}.json")},
    )


@get("/api/projects/{project:str}/runs/{run_id:int}", access="reporter", run_token=True)
def run_api(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> RunDetail:
    return run_detail(run_context(hub, project, run_id))


@get("/api/projects/{project:str}/runs/{run_id:int}/metrics", access="reporter", run_token=True)
def metrics_api(
    hub: HubDep, project: FromPath[str], run_id: FromPath[int], times: FromQuery[bool] = False
) -> MetricHistory:
    """Each key's points as [step, value], or [step, value, time] with `times=true` (seconds
    since the epoch, as the logger stamped them)."""
    hub.runs.run_in(project, run_id)
    return hub.runs.metric_history(run_id, times)


@post(
    "/api/projects/{project:str}/runs/{run_id:int}/metrics",
    access="developer",
    run_token=True,
    status_code=201,
)
def log_metrics_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    data: JSONBody[MetricPost],
) -> Stored:
    require_run_writer(hub, request.user, project, run_id)
    hub.script_runs.touch(run_id)
    columns = metric_columns(data)
    step = as_own_step(request.user, data.step or "")
    return Stored(hub.runs.log_metric_columns(run_id, step, columns))


@post(
    "/api/projects/{project:str}/runs/{run_id:int}/params",
    access="developer",
    run_token=True,
    status_code=201,
)
def log_params_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    data: JSONBody[ParamsPost],
) -> Stored:
    require_run_writer(hub, request.user, project, run_id)
    hub.script_runs.touch(run_id)
    step = as_own_step(request.user, data.step or "script")
    hub.runs.log_params(run_id, step, data.params)
    return Stored(len(data.params))


@post(
    "/api/projects/{project:str}/runs/{run_id:int}/artifacts",
    access="developer",
    run_token=True,
    status_code=201,
    request_max_body_size=None,
)
def upload_artifact_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    data: Annotated[ArtifactUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> ArtifactStored:
    require_run_writer(hub, request.user, project, run_id)
    step = as_own_step(request.user, data.step or "script")
    file = data.file
    file.file.seek(0)
    digest, size = hub.artifacts.put_stream(file.file)
    name = data.name or file.filename
    hub.runs.add_artifact(run_id, step, name, digest, size)
    return ArtifactStored(name, digest, size)


@get(
    "/api/projects/{project:str}/runs/{run_id:int}/artifacts/{artifact_id:int}",
    access="reporter",
    responses=file_answer(
        "application/octet-stream",
        "the artifact's content, with the media type its name implies (sandboxed)",
    ),
)
def artifact_api(
    hub: HubDep, project: FromPath[str], run_id: FromPath[int], artifact_id: FromPath[int]
) -> Response:
    """The artifact's content, with the media type its name implies (sandboxed)."""
    return _artifact(hub, project, run_id, artifact_id)


@get("/api/projects/{project:str}/runs/{run_id:int}/logs", access="reporter")
def logs_api(
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    step: FromQuery[str | None] = None,
    offset: Offset = 0,
) -> AllLogs | StepLog:
    """Without `step`: the tail of each step's log. With it: that step's log from `offset`."""
    hub.runs.run_in(project, run_id)
    if step is None:
        return AllLogs(step_logs(hub, run_id))
    if step not in {s.name for s in hub.runs.steps(run_id)}:
        raise NotFound(f"run {run_id} has no step '{step}'")
    text, end = read_log(hub, run_id, step, offset)
    return StepLog(step, text, end)


@post("/api/projects/{project:str}/runs/{run_id:int}/cancel", access="developer", status_code=200)
def cancel_api(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int]
) -> RunState:
    hub.runs.run_in(project, run_id)
    hub.orchestrator.cancel(run_id, request.user)
    return RunState(run_id, hub.runs.run(run_id).status)


@post(
    "/api/projects/{project:str}/runs/{run_id:int}/steps/{step:str}/retry",
    access="developer",
    status_code=200,
)
def retry_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    step: FromPath[str],
) -> RunState:
    """Run a failed or cancelled step of a finished run again, with the steps it held back."""
    hub.runs.run_in(project, run_id)
    hub.orchestrator.retry(run_id, step, request.user)
    return RunState(run_id, hub.runs.run(run_id).status)


@post("/projects/{project:str}/runs/{run_id:int}/steps/{step:str}/retry", access="developer")
def retry_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    run_id: FromPath[int],
    step: FromPath[str],
    data: Form,
) -> Redirect:
    retry_api.fn(request, hub, project, run_id, step)
    return Redirect(f"/projects/{project}/runs/{run_id}")


@post("/api/projects/{project:str}/runs/{run_id:int}/rerun", access="developer", status_code=201)
def rerun_api(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int]
) -> RunId:
    """A new run from the pinned spec of this one (every step runs again)."""
    return RunId(rerun(hub, request.user, project, run_id))


# pages -------------------------------------------------------------------------------
@post("/projects/{project:str}/runs/{run_id:int}/comments", access="reporter")
def comment_page(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int], data: Form
) -> Redirect:
    add_comment(hub, request.user, project, run_id, data.get("text", ""))
    return Redirect(f"/projects/{project}/runs/{run_id}#comments")


@get("/projects/{project:str}/runs/{run_id:int}/record", access="reporter")
def record_page(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> Response:
    return record_api.fn(hub, project, run_id)


RUN_FRAGMENTS = {"run-actions": "_run_actions.html", "record": "_run_record.html"}


@get("/projects/{project:str}/runs/{run_id:int}", access="reporter")
def run_page(
    request: HTMXRequest, hub: HubDep, project: FromPath[str], run_id: FromPath[int]
) -> Template:
    """The run; an htmx request for its buttons or its record gets that fragment only."""
    target = request.htmx.target if request.htmx else None
    if target in RUN_FRAGMENTS:
        p = hub.projects.get(project)
        run = hub.runs.run(run_id, p.id)
        ctx = {"project": p, "run": run, "steps": hub.runs.steps(run_id)}
        return Template(RUN_FRAGMENTS[target], context={**ctx, "previous": previous(hub, run)})
    ctx = run_context(hub, project, run_id)
    logs, ends = logs_with_ends(hub, run_id)
    extra = {"logs": logs, "log_ends": ends, "previous": previous(hub, ctx["run"])}
    return Template("run.html", context={**ctx, **extra})


@get("/projects/{project:str}/runs/{run_id:int}/status", access="reporter")
def run_status_cell(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> Template:
    """One run's status cell, for the runs table to keep current."""
    p = hub.projects.get(project)
    ctx = {"project": p, "run_id": run_id, "status": hub.runs.run(run_id, p.id).status}
    return Template("_run_status_cell.html", context=ctx)


def previous(hub: Hub, run: Any) -> int | None:
    """The run of the same pipeline before this one, to compare with."""
    if not run.pipeline:
        return None
    earlier = [r.id for r in hub.runs.list_runs(run.project_id, limit=200)
               if r.pipeline == run.pipeline and r.id < run.id]  # fmt: skip
    return earlier[0] if earlier else None


@get("/projects/{project:str}/runs/{run_id:int}/live", access="reporter")
def run_live(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> Template:
    return Template("_run_live.html", context=run_context(hub, project, run_id))


@get("/projects/{project:str}/runs/{run_id:int}/metrics", access="reporter")
def run_metrics_page(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> dict:
    return metrics_api.fn(hub, project, run_id)


@get("/projects/{project:str}/runs/{run_id:int}/artifacts/{artifact_id:int}", access="reporter")
def artifact_page(
    hub: HubDep, project: FromPath[str], run_id: FromPath[int], artifact_id: FromPath[int]
) -> Response:
    return _artifact(hub, project, run_id, artifact_id)


@post("/projects/{project:str}/runs/{run_id:int}/cancel", access="developer")
def cancel_page(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int], data: Form
) -> Redirect:
    cancel_api.fn(request, hub, project, run_id)
    return Redirect(f"/projects/{project}/runs/{run_id}")


@post("/projects/{project:str}/runs/{run_id:int}/rerun", access="developer")
def rerun_page(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int], data: Form
) -> Redirect:
    return Redirect(f"/projects/{project}/runs/{rerun(hub, request.user, project, run_id)}")


def _artifact(hub: Hub, project: str, run_id: int, artifact_id: int) -> Response:
    hub.runs.run_in(project, run_id)
    row = next((a for a in hub.runs.artifacts(run_id) if a["id"] == artifact_id), None)
    if row is None:
        raise NotFound(f"run {run_id} has no artifact {artifact_id}")

    def chunks() -> Any:
        with hub.artifacts.open(row["digest"]) as f:
            while chunk := f.read(1 << 16):
                yield chunk

    # Module-written HTML and SVG must not run scripts on reef's origin: sandbox them.
    headers = {
        "Content-Disposition": inline(row["name"]),
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
    return Stream(chunks(), media_type=media_type(row["name"]), headers=headers)


MEDIA_TYPES = {
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html",
    ".txt": "text/plain",
    ".csv": "text/csv",
}


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def visual(name: str) -> str | None:
    """How the run page shows an artifact inline: "image", "html", or not at all."""
    suffix = Path(name).suffix.lower()
    return "image" if suffix in (".svg", ".png") else "html" if suffix == ".html" else None


ROUTES = [
    retry_api,
    retry_page,
    create_run_api,
    heartbeat_api,
    finish_api,
    comments_api,
    comment_api,
    record_api,
    comment_page,
    run_status_cell,
    record_page,
    run_api,
    metrics_api,
    log_metrics_api,
    log_params_api,
    upload_artifact_api,
    artifact_api,
    logs_api,
    cancel_api,
    rerun_api,
    rerun_diff_api,
    run_page,
    run_live,
    run_metrics_page,
    artifact_page,
    cancel_page,
    rerun_page,
]
