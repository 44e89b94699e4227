"""Datasets over HTTP: the JSON API (see docs/datasets.md); the pages are in `dataset_pages`
and are registered with these routes."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.server import dataset_pages
from reef.server.bodies import JSON, MULTIPART, decode, documented
from reef.server.dataset_changes import (
    UPLOAD_FORM,
    DatasetChange,
    Rule,
    RuleList,
    TagRequest,
    apply_change,
    dataset_id,
    key_state,
    preview,
    receive,
    recheck,
    remove_tag,
    rule_dicts,
    set_key,
    set_rules,
    set_tag,
    start_upload,
    upload,
)
from reef.server.dataset_export import MEDIA_TYPES
from reef.server.dataset_responses import (
    MADE,
    STARTED,
    DatasetDetail,
    DatasetDiff,
    DatasetProfile,
    DatasetRows,
    DatasetRules,
    DatasetSummary,
    DatasetTag,
    DatasetValidation,
    ImportJobView,
    ImportPreview,
    QueryResult,
    VersionDetail,
    VersionListed,
    VersionMade,
)
from reef.server.dataset_views import (
    PAGE,
    Query,
    dataset_context,
    diff_context,
    query_body,
    query_download,
    rows_context,
    run_query_in_pool,
    version_context,
    version_download,
)
from reef.server.file_answers import in_formats
from reef.server.routes import (
    FromPath,
    FromQuery,
    HubDep,
    JSONBody,
    Offset,
    delete,
    get,
    post,
    put,
)
from reef.server.shaped import shaped
from reef.server.upload_stream import Received
from reef.store.people import Principal

# API ------------------------------------------------------------------------------------------
API = "/api/projects/{project:str}/datasets"
ONE = API + "/{dataset:str}"
VERSION = ONE + "/versions/{version:str}"


@get(API, access="reporter")
def list_datasets_api(hub: HubDep, project: FromPath[str]) -> list[DatasetSummary]:
    return shaped(list[DatasetSummary], hub.catalog.datasets(hub.projects.get(project).id))


UPLOADED = documented({MULTIPART: UPLOAD_FORM})


@post(
    API,
    access="developer",
    status_code=201,
    request_max_body_size=None,
    operation_class=UPLOADED,
    responses={**MADE, **STARTED},
)
async def upload_api(
    request: Request, hub: HubDep, project: FromPath[str], wait: FromQuery[bool] = True
) -> Response[VersionMade] | Response[ImportJobView]:
    """A multipart upload (field `file`; `name`, `format`, `delimiter`, `encoding`, `sheet`,
    `column_types`, `mode`, `message`): the new version (201); with ?wait=false the import
    job to poll (202). The file streams into the data dir; see docs/datasets.md for limits."""
    received = await receive(request, hub)
    if not wait:
        job = await anyio.to_thread.run_sync(start_upload, hub, request.user, project, received)
        return _started(job)
    made = await anyio.to_thread.run_sync(upload, hub, request.user, project, received)
    return _made(made)


def _made(result: dict) -> Response[VersionMade]:
    """A new version (201), or 200 when the upload held the latest version's rows."""
    return Response(
        shaped(VersionMade, result), status_code=200 if result.get("unchanged") else 201
    )


def _started(job: dict) -> Response[ImportJobView]:
    """The import job now running in the background (202)."""
    return Response(shaped(ImportJobView, job), status_code=202)


@get("/api/projects/{project:str}/imports/{job:int}", access="reporter")
def import_job_api(hub: HubDep, project: FromPath[str], job: FromPath[int]) -> ImportJobView:
    """A background import: status, phase, rows_done of total_rows, result or error."""
    return shaped(ImportJobView, hub.datasets.imports.get(project, job).as_dict())


@post(
    API + "/preview",
    access="developer",
    status_code=200,
    request_max_body_size=None,
    operation_class=UPLOADED,
)
async def preview_api(request: Request, hub: HubDep, project: FromPath[str]) -> ImportPreview:
    """A multipart upload as for an import: what it would import; nothing is kept."""
    hub.projects.get(project)
    received = await receive(request, hub)
    return shaped(ImportPreview, await anyio.to_thread.run_sync(preview, hub, received))


@get(ONE, access="reporter")
def dataset_api(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> DatasetDetail:
    return shaped(DatasetDetail, dataset_context(hub, project, dataset))


@get(ONE + "/versions", access="reporter")
def versions_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str]
) -> list[VersionListed]:
    return shaped(list[VersionListed], dataset_context(hub, project, dataset)["versions"])


@post(
    ONE + "/versions",
    access="developer",
    status_code=201,
    request_max_body_size=None,
    operation_class=documented({JSON: DatasetChange, MULTIPART: UPLOAD_FORM}),
    responses={**MADE, **STARTED},
)
async def new_version_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    wait: FromQuery[bool] = True,
) -> Response[VersionMade] | Response[ImportJobView]:
    """A multipart upload (replace, or append with mode=append; with ?wait=false it runs in
    the background and the answer is its job, 202) or a JSON change."""
    if request.content_type[0] == "multipart/form-data":
        received = await receive(request, hub)
        if not wait:
            job = await anyio.to_thread.run_sync(
                upload_version, hub, request.user, project, dataset, received, start_upload
            )
            return _started(job)
        made = await anyio.to_thread.run_sync(
            upload_version, hub, request.user, project, dataset, received
        )
        return _made(made)
    change: DatasetChange = decode(await request.body(), DatasetChange)  # type: ignore[arg-type]
    made = await anyio.to_thread.run_sync(apply_change, hub, request.user, project, dataset, change)
    return _made(made)


def upload_version(
    hub: Hub, who: Principal, project: str, dataset: str, received: Received, how: Any = upload
) -> dict:
    try:
        dataset_id(hub, project, dataset)  # a new version of an existing dataset only
    except NotFound:
        received.discard()
        raise
    return how(hub, who, project, received, name=dataset)


@get(VERSION, access="reporter")
def version_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromPath[str]
) -> VersionDetail:
    return shaped(VersionDetail, version_context(hub, project, dataset, version))


@get(VERSION + "/rows", access="reporter")
def rows_api(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromPath[str],
    offset: Offset = 0,
    limit: FromQuery[int] = PAGE,
    row_ids: FromQuery[bool] = False,
) -> DatasetRows:
    return shaped(DatasetRows, rows_context(hub, project, dataset, version, offset, limit, row_ids))


@get(VERSION + "/profile", access="reporter")
def profile_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromPath[str]
) -> DatasetProfile:
    dataset_id(hub, project, dataset)
    return shaped(DatasetProfile, hub.datasets.profile(project, dataset, version))


@get(VERSION + "/validation", access="reporter")
def validation_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromPath[str]
) -> DatasetValidation:
    found = version_context(hub, project, dataset, version)["validation"]
    if found is None:
        raise NotFound(f"{dataset}@{version} was not checked (the dataset has no rules yet)")
    return shaped(DatasetValidation, found)


@post(VERSION + "/validation", access="developer", status_code=200)
def recheck_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromPath[str]
) -> DatasetValidation:
    found = recheck(hub, project, dataset, version)
    if found is None:
        raise InvalidInput(f"dataset '{dataset}' has no rules to check")
    return shaped(DatasetValidation, found)


@get(
    VERSION + "/download",
    access="reporter",
    operation_class=in_formats(
        "the version as CSV (?format=csv, the default) or Parquet", MEDIA_TYPES.values()
    ),
)
async def download_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromPath[str],
    format: FromQuery[str] = "csv",
) -> Stream:
    return await version_download(hub, request.user, project, dataset, version, format)


@get(ONE + "/diff", access="reporter")
def diff_api(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    old: Annotated[str | None, QueryParameter(name="from")] = None,
    new: Annotated[str | None, QueryParameter(name="to")] = None,
    offset: Offset = 0,
    limit: FromQuery[int] = 100,
) -> DatasetDiff:
    return shaped(DatasetDiff, diff_context(hub, project, dataset, old, new, offset, limit))


@post(
    ONE + "/query",
    access="reporter",
    status_code=200,
    responses={200: ResponseSpec(QueryResult, generate_examples=False)},
    operation_class=in_formats(
        "the result's rows; with ?format=csv or ?format=parquet the whole result, as a file",
        MEDIA_TYPES.values(),
        also_json=True,
    ),
)
async def query_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    data: JSONBody[Query],
    format: FromQuery[str | None] = None,
) -> QueryResult | Stream:
    """Rows of the query's result; with ?format=csv|parquet the whole result.
    Queries run in the query pool: 429 when it (or the caller's share of it) is full."""
    sql, version, limit = query_body(data)
    if format:
        return await query_download(hub, request.user, project, dataset, sql, version, format)
    found = await run_query_in_pool(hub, request.user, project, dataset, sql, version, limit)
    return shaped(QueryResult, found)


@post(ONE + "/tags/{tag:str}", access="developer", status_code=201)
def tag_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    tag: FromPath[str],
    data: JSONBody[TagRequest | None] = None,
) -> DatasetTag:
    """Tag a version (default: the latest)."""
    body = data or TagRequest()
    made = set_tag(hub, request.user, project, dataset, tag, body.version, body.move)
    return shaped(DatasetTag, made)


@delete(ONE + "/tags/{tag:str}", access="developer", status_code=204)
def untag_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    tag: FromPath[str],
) -> None:
    remove_tag(hub, request.user, project, dataset, tag)


class KeyChoice(msgspec.Struct, forbid_unknown_fields=True):
    """The column confirmed as the key (a column that names each row, so reef can tell a
    changed row from a new one: unique and never empty); null clears it."""

    column: str | None


class KeyState(msgspec.Struct):
    key: str | None  # the declared key, if any
    suggested: str | None  # with no key: a unique, never-empty column reef proposes
    help: str  # what a key is, in plain words


@get(ONE + "/key", access="reporter")
def key_state_api(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> KeyState:
    """The key, or the column reef suggests as the key; confirm it with PUT."""
    return KeyState(**key_state(hub, project, dataset))


@put(ONE + "/key", access="developer")
def key_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    data: JSONBody[KeyChoice],
) -> KeyState:
    """`{"column": NAME}` declares the key (400 naming the column when its values are
    empty or repeat); `{"column": null}` clears it."""
    set_key(hub, request.user, project, dataset, data.column)
    return KeyState(**key_state(hub, project, dataset))


@get(ONE + "/rules", access="reporter")
def rules_api(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> list[Rule]:
    return shaped(list[Rule], hub.catalog.rules(dataset_id(hub, project, dataset)))


@put(ONE + "/rules", access="developer")
def set_rules_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    data: JSONBody[list[Rule] | RuleList],
) -> DatasetRules:
    """A list of rules (or `{"rules": [...]}`) replaces the dataset's rules."""
    return shaped(DatasetRules, set_rules(hub, request.user, project, dataset, rule_dicts(data)))


ROUTES = [
    *dataset_pages.ROUTES,
    list_datasets_api,
    upload_api,
    import_job_api,
    preview_api,
    dataset_api,
    versions_api,
    new_version_api,
    version_api,
    rows_api,
    profile_api,
    validation_api,
    recheck_api,
    download_api,
    diff_api,
    query_api,
    tag_api,
    untag_api,
    key_state_api,
    key_api,
    rules_api,
    set_rules_api,
]
