"""Batch prediction jobs over HTTP: asked (202 and the job), listed, followed; the model page
shows them in a table that refreshes itself while one is queued or running, each finished
job linking to the dataset version it wrote."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Request, Response
from litestar.response import Template

from reef.errors import ReefError
from reef.hub import Hub
from reef.runtime.batch import scores_name
from reef.server.dataset_changes import upload
from reef.server.model_answers import BatchJob
from reef.server.model_requests import BatchRequest
from reef.server.routes import FromPath, HubDep, JSONBody, get, post
from reef.server.shaped import shaped
from reef.server.upload_stream import received_file
from reef.store.people import Principal

LISTED = 20


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API and the page show it, with links to itself and to its result."""
    base = f"/projects/{job['project']}"
    result = job["result"] or {}
    links = {"api": f"/api{base}/models/{job['model']}/batch/{job['id']}"}
    if result:
        links["dataset"] = f"{base}/datasets/{result['dataset']}?version={result['version']}"
    return {**job, "links": links}


def jobs_context(hub: Hub, project: str, model: str, error: str | None = None) -> dict:
    model_id = hub.model_service.model_id(project, model)
    jobs = [job_view(j) for j in hub.model_service.batches.jobs.list(model_id, LISTED)]
    active = any(j["status"] in ("queued", "running") for j in jobs)
    return {"project": project, "model": model, "jobs": jobs, "active": active, "error": error}


# API ---------------------------------------------------------------------------------
@post("/api/projects/{project:str}/models/{model:str}/batch", access="developer")
def batch_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[BatchRequest],
) -> Response[BatchJob]:
    """Queue a batch prediction: 202 with the job to follow (`links.api`)."""
    asked = msgspec.structs.asdict(data)
    job = hub.model_service.batches.submit(request.user.name, project, model, asked)
    return Response(shaped(BatchJob, job_view(job)), status_code=202)


@get("/api/projects/{project:str}/models/{model:str}/batch", access="reporter")
def batch_jobs_api(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> list[BatchJob]:
    """The latest jobs, newest first."""
    return shaped(list[BatchJob], jobs_context(hub, project, model)["jobs"])


@get("/api/projects/{project:str}/models/{model:str}/batch/{job:int}", access="reporter")
def batch_job_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str], job: FromPath[int]
) -> BatchJob:
    model_id = hub.model_service.model_id(project, model)
    return shaped(BatchJob, job_view(hub.model_service.batches.jobs.get(job, model_id)))


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/models/{model:str}/batch", access="reporter")
def batch_jobs_partial(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> Template:
    return Template("_model_batch_jobs.html", context=jobs_context(hub, project, model))


@post("/projects/{project:str}/models/{model:str}/batch", access="developer", status_code=200)
async def batch_form(request: Request, project: FromPath[str], model: FromPath[str]) -> Template:
    """Queue a batch prediction from the model page: of a dataset, or of an uploaded CSV or
    Excel file (stored as dataset `<model>-input-<n>`); the jobs table comes back."""
    form = await request.form()
    hub: Hub = request.app.state.hub
    upload = form.get("file")
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    asked = {k: v for k, v in fields.items() if k != "_csrf_token" and v}

    def submit() -> None:
        if getattr(upload, "filename", ""):
            asked["dataset"] = _store_upload(hub, request.user, project, model, upload)
        hub.model_service.batches.submit(request.user.name, project, model, asked)

    error, status = None, 200
    try:
        await anyio.to_thread.run_sync(submit)
    except ReefError as e:
        error, status = e.message, e.status
    ctx = await anyio.to_thread.run_sync(jobs_context, hub, project, model, error)
    return Template("_model_batch_jobs.html", context=ctx, status_code=status)


def _store_upload(hub: Hub, who: Principal, project: str, model: str, file: Any) -> str:
    """The uploaded file as a new dataset to score; its name."""
    name = scores_name(hub.model_service, project, model, "input")
    fields = {"name": name, "message": f"uploaded to score with {model}"}
    received = received_file(hub.settings.data_dir, file, fields, hub.settings.max_upload_mb)
    return str(upload(hub, who, project, received)["dataset"])


ROUTES = [batch_api, batch_jobs_api, batch_job_api, batch_jobs_partial, batch_form]
