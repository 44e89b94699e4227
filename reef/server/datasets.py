"""Datasets: upload (a new Lance version each time), versions, and a paged preview."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile
from litestar.response import Redirect, Template

from reef.errors import InvalidInput, NotFound, TooLarge
from reef.server.routes import FromPath, FromQuery, HubDep, Multipart, get, post
from reef.store.people import Principal, check_name

PAGE = 50


def upload(hub: HubDep, who: Principal, project: str, data: dict, name: str | None = None) -> dict:
    """Store an uploaded file as the next version of dataset `name` (version 1 when new)."""
    file = data.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidInput("send the file in multipart field 'file'")
    name = check_name("dataset", name or data.get("name") or Path(file.filename).stem.lower())
    message = str(data.get("message") or f"upload {file.filename}")
    with tempfile.TemporaryDirectory(dir=hub.settings.data_dir) as tmp:
        src = Path(tmp) / Path(file.filename or "upload").name
        _spool(file, src, hub.settings.max_upload_mb << 20)
        info = hub.datasets.import_file(project, name, src)
    p = hub.projects.get(project)
    dataset_id = hub.catalog.dataset_id(p.id, name, author=who.name)
    hub.catalog.record_version(
        dataset_id,
        info.version,
        author=who.name,
        message=message,
        num_rows=info.num_rows,
        columns=info.columns,
        source=file.filename or "",
    )
    hub.audit.record(
        who.name,
        "dataset.version",
        f"dataset {name}@{info.version}",
        project,
        rows=info.num_rows,
        message=message,
    )
    return {
        "dataset": name,
        "version": info.version,
        "num_rows": info.num_rows,
        "columns": [{"name": n, "type": t} for n, t in info.columns],
    }


def _spool(file: UploadFile, dest: Path, limit: int) -> None:
    file.file.seek(0)
    with dest.open("wb") as out:
        copied = 0
        while chunk := file.file.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise TooLarge(f"upload larger than the limit of {limit >> 20} MiB")
            out.write(chunk)
    if copied == 0:
        raise InvalidInput(f"the uploaded file {file.filename!r} is empty")


def dataset_context(hub: HubDep, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    try:
        dataset_id = hub.catalog.dataset_id(p.id, name)
    except NotFound:
        raise NotFound(f"dataset '{name}' not found in project '{project}'") from None
    versions = hub.catalog.versions(dataset_id)
    return {
        "project": p,
        "dataset": name,
        "versions": versions,
        "latest": versions[0]["version"],
        "columns": versions[0]["columns"],
    }


def rows_context(
    hub: HubDep, project: str, name: str, version: int | None, offset: int, limit: int
) -> dict[str, Any]:
    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidInput("offset must be >= 0 and limit between 1 and 1000")
    info = hub.datasets.info(project, name, version)
    columns, rows = hub.datasets.rows(project, name, info.version, offset, limit)
    return {
        "project": project,
        "dataset": name,
        "version": info.version,
        "offset": offset,
        "limit": limit,
        "total": info.num_rows,
        "columns": columns,
        "rows": rows,
    }


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/datasets", access="reporter")
def list_datasets_api(hub: HubDep, project: FromPath[str]) -> list[dict]:
    return hub.catalog.datasets(hub.projects.get(project).id)


@post(
    "/api/projects/{project:str}/datasets",
    access="developer",
    status_code=201,
    request_max_body_size=None,
)
def upload_api(request: Request, hub: HubDep, project: FromPath[str], data: Multipart) -> dict:
    return upload(hub, request.user, project, data)


@get("/api/projects/{project:str}/datasets/{dataset:str}", access="reporter")
def dataset_api(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> dict:
    return dataset_context(hub, project, dataset)


@get("/api/projects/{project:str}/datasets/{dataset:str}/versions", access="reporter")
def versions_api(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> list[dict]:
    return dataset_context(hub, project, dataset)["versions"]


@post(
    "/api/projects/{project:str}/datasets/{dataset:str}/versions",
    access="developer",
    status_code=201,
    request_max_body_size=None,
)
def new_version_api(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Multipart
) -> dict:
    dataset_context(hub, project, dataset)
    return upload(hub, request.user, project, data, name=dataset)


@get("/api/projects/{project:str}/datasets/{dataset:str}/versions/{version:int}", access="reporter")
def version_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromPath[int]
) -> dict:
    ctx = dataset_context(hub, project, dataset)
    for v in ctx["versions"]:
        if v["version"] == version:
            return v
    raise NotFound(f"dataset '{dataset}' has no version {version}")


@get(
    "/api/projects/{project:str}/datasets/{dataset:str}/versions/{version:int}/rows",
    access="reporter",
)
def rows_api(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromPath[int],
    offset: FromQuery[int] = 0,
    limit: FromQuery[int] = PAGE,
) -> dict:
    return rows_context(hub, project, dataset, version, offset, limit)


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/datasets/{dataset:str}", access="reporter")
def dataset_page(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromQuery[int | None] = None,
) -> Template:
    ctx = dataset_context(hub, project, dataset)
    rows = rows_context(hub, project, dataset, version or ctx["latest"], 0, PAGE)
    return Template("dataset.html", context={**ctx, **rows})


@get("/projects/{project:str}/datasets/{dataset:str}/rows", access="reporter")
def rows_partial(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromQuery[int],
    offset: FromQuery[int] = 0,
) -> Template:
    ctx = rows_context(hub, project, dataset, version, offset, PAGE)
    return Template("_rows.html", context=ctx)


@post("/projects/{project:str}/datasets", access="developer", request_max_body_size=None)
def upload_page(request: Request, hub: HubDep, project: FromPath[str], data: Multipart) -> Redirect:
    result = upload(hub, request.user, project, data)
    return Redirect(f"/projects/{project}/datasets/{result['dataset']}")


ROUTES = [
    list_datasets_api,
    upload_api,
    dataset_api,
    versions_api,
    new_version_api,
    version_api,
    rows_api,
    dataset_page,
    rows_partial,
    upload_page,
]
