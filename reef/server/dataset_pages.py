"""Dataset pages (HTMX, server-rendered): the dataset with its versions, profile, editable
preview and change forms; the import with a schema preview; diff; query; rules.

Forms post with htmx; a change answers with a redirect to the dataset page (`HX-Redirect`),
an error with a short message swapped into the form's message slot.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from litestar import Request, Response
from litestar.params import QueryParameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Stream, Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.bodies import convert
from reef.server.dataset_changes import (
    DatasetChange,
    apply_change,
    dataset_id,
    key_state,
    preview,
    receive,
    recheck,
    remove_tag,
    set_key,
    set_rules,
    set_tag,
    start_upload,
    upload,
)
from reef.server.dataset_views import (
    PAGE,
    dataset_context,
    diff_context,
    query_download,
    rows_context,
    run_query_in_pool,
    version_download,
)
from reef.server.routes import Form, FromPath, FromQuery, HubDep, Offset, from_htmx, get, post
from reef.store.dataset_import import COLUMN_TYPES
from reef.store.rules import RULE_FIELDS, describe

EDITORS = ("developer", "maintainer", "owner")
PAGES = "/projects/{project:str}/datasets/{dataset:str}"


def _go(request: Request, url: str) -> Response:
    """After a change: htmx follows `HX-Redirect`, a plain form a 303."""
    if from_htmx(request):
        return Response("", status_code=200, headers={"HX-Redirect": url})
    return Redirect(url, status_code=303)


def _page_url(project: str, dataset: str, **query: Any) -> str:
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"/projects/{project}/datasets/{dataset}" + (f"?{urlencode(query)}" if query else "")


def page_context(
    hub: Hub, who: Any, project: str, name: str, version: str | None, offset: int
) -> dict[str, Any]:
    ctx = dataset_context(hub, project, name)
    can_edit = hub.projects.role_of(project, who) in EDITORS
    shown = hub.datasets.resolve(project, name, version or None)
    editable = can_edit and shown == ctx["latest"]
    rows = rows_context(hub, project, name, shown, offset, PAGE, with_row_id=editable)
    return {
        **ctx,
        **rows,
        "project": ctx["project"],
        "can_edit": can_edit,
        "editable": editable,
        "column_types": list(COLUMN_TYPES),
        "base": base_url(project, name),
    }


def base_url(project: str, dataset: str) -> str:
    return f"/projects/{project}/datasets/{dataset}"


@get(PAGES, access="reporter")
def dataset_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromQuery[str | None] = None,
    offset: Offset = 0,
) -> Template:
    ctx = page_context(hub, request.user, project, dataset, version, offset)
    return Template("dataset.html", context=ctx)


@get(PAGES + "/rows", access="reporter")
def rows_partial(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromQuery[str],
    offset: Offset = 0,
) -> Template:
    ctx = page_context(hub, request.user, project, dataset, version, offset)
    return Template("_dataset_rows.html", context=ctx)


@get(PAGES + "/profile", access="reporter")
def profile_partial(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], version: FromQuery[str]
) -> Template:
    dataset_id(hub, project, dataset)
    profile = hub.datasets.profile(project, dataset, version)
    return Template("_dataset_profile.html", context={"profile": profile})


@get(PAGES + "/cell", access="developer")
def cell_form(
    project: FromPath[str],
    dataset: FromPath[str],
    row: FromQuery[int],
    column: FromQuery[str],
    value: FromQuery[str] = "",
    offset: Offset = 0,
) -> Template:
    ctx = {"base": base_url(project, dataset), "row": row, "column": column,
           "value": value, "offset": offset}  # fmt: skip
    return Template("_dataset_cell.html", context=ctx)


def form_change(data: dict[str, str]) -> dict[str, Any]:
    """A page form as an API change body (see `dataset_changes.CHANGES`)."""
    op, message = data.get("op", ""), data.get("message") or None
    if op == "edit_cell":
        value = data.get("value", "")
        row = {"_rowid": _whole(data.get("row")), data.get("column", ""): value or None}
        return {"op": "update_rows", "updates": [row], "message": message}
    if op == "add_column":
        default = data.get("default") or None
        return {"op": op, "column": data.get("column"), "type": data.get("type"),
                "default": default, "message": message}  # fmt: skip
    keep = ("where", "column", "new_name", "version")
    return {"op": op, "message": message, **{k: data[k] for k in keep if data.get(k)}}


def _whole(text: str | None) -> int:
    if not text or not text.isdigit():
        raise InvalidInput(f"a row id is a whole number, not {text!r}")
    return int(text)


@post(PAGES + "/change", access="developer")
def change_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    change: DatasetChange = convert(form_change(data), DatasetChange)  # type: ignore[arg-type]
    apply_change(hub, request.user, project, dataset, change)
    return _go(request, _page_url(project, dataset, offset=data.get("offset")))


@post(PAGES + "/tags", access="developer")
def tag_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    tag = data.get("tag", "")
    if data.get("action") == "remove":
        remove_tag(hub, request.user, project, dataset, tag)
    else:
        version = data.get("version") or None
        set_tag(hub, request.user, project, dataset, tag, version, move=bool(data.get("move")))
    return _go(request, _page_url(project, dataset))


@post(PAGES + "/key", access="developer")
def key_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    set_key(hub, request.user, project, dataset, data.get("column") or None)
    return _go(request, _page_url(project, dataset))


@get(PAGES + "/key-suggestion", access="developer")
def key_suggestion_partial(hub: HubDep, project: FromPath[str], dataset: FromPath[str]) -> Template:
    """With no key: the column reef suggests as the key, to confirm with one click."""
    ctx = {**key_state(hub, project, dataset), "base": base_url(project, dataset)}
    return Template("_dataset_key.html", context=ctx)


@get(PAGES + "/download", access="reporter")
async def download_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    version: FromQuery[str | None] = None,
    format: FromQuery[str] = "csv",
) -> Stream:
    return await version_download(hub, request.user, project, dataset, version, format)


# --- import ----------------------------------------------------------------------------------


@get("/projects/{project:str}/import-dataset", access="developer")
def import_page(hub: HubDep, project: FromPath[str], dataset: FromQuery[str] = "") -> Template:
    ctx = {"project": hub.projects.get(project), "dataset": dataset}
    return Template("dataset_import.html", context=ctx)


@post("/projects/{project:str}/import-dataset/preview", access="developer",
      request_max_body_size=None)  # fmt: skip
async def preview_partial(request: Request, hub: HubDep, project: FromPath[str]) -> Template:
    received = await receive(request, hub)
    shown = await anyio.to_thread.run_sync(preview, hub, received)
    return Template("_dataset_preview.html", context={"preview": shown})


@post("/projects/{project:str}/datasets", access="developer", request_max_body_size=None)
async def upload_page(request: HTMXRequest, hub: HubDep, project: FromPath[str]) -> Any:
    """From htmx: the upload is imported in the background and the answer is its progress,
    polled until the version exists; a plain form waits for the import."""
    received = await receive(request, hub)
    if request.htmx:
        job = await anyio.to_thread.run_sync(start_upload, hub, request.user, project, received)
        return Template("_dataset_import_job.html", context={"job": job})
    result = await anyio.to_thread.run_sync(upload, hub, request.user, project, received)
    return _go(request, _page_url(project, result["dataset"]))


@get("/projects/{project:str}/imports/{job:int}", access="reporter")
def import_job_partial(
    request: Request, hub: HubDep, project: FromPath[str], job: FromPath[int]
) -> Any:
    """The progress of a background import; once it is done, on to the dataset page (or,
    when the file changed nothing, a line saying so)."""
    found = hub.datasets.imports.get(project, job)
    if found.status == "done" and not (found.result or {}).get("unchanged"):
        return _go(request, _page_url(project, found.dataset))
    return Template("_dataset_import_job.html", context={"job": found.as_dict()})


# --- diff, query -----------------------------------------------------------------------------


@get(PAGES + "/diff", access="reporter")
def diff_page(
    request: HTMXRequest,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    old: Annotated[str | None, QueryParameter(name="from")] = None,
    new: Annotated[str | None, QueryParameter(name="to")] = None,
    offset: Offset = 0,
) -> Template:
    ctx = {**dataset_context(hub, project, dataset),
           **diff_context(hub, project, dataset, old, new, offset, PAGE),
           "base": base_url(project, dataset)}  # fmt: skip
    partial = request.htmx and request.htmx.target == "diff"
    return Template("_dataset_diff.html" if partial else "dataset_diff.html", context=ctx)


@get(PAGES + "/query", access="reporter")
def query_page(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    sql: FromQuery[str] = "",
    version: FromQuery[str | None] = None,
) -> Template:
    ctx = dataset_context(hub, project, dataset)
    sql = sql or f"SELECT * FROM {_quoted(dataset)} LIMIT 100"
    ctx = {**ctx, "sql": sql, "version": version or "", "base": base_url(project, dataset)}
    return Template("dataset_query.html", context=ctx)


def _quoted(name: str) -> str:
    return name if name.replace("_", "").isalnum() and not name[0].isdigit() else f'"{name}"'


@post(PAGES + "/query", access="reporter")
async def query_partial(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Template:
    version = data.get("version") or None
    sql = data.get("sql", "")
    result = await run_query_in_pool(hub, request.user, project, dataset, sql, version)
    ctx = {**result, "base": base_url(project, dataset), "query_version": version or ""}
    return Template("_dataset_query_result.html", context=ctx)


@get(PAGES + "/query/download", access="reporter")
async def query_download_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    sql: FromQuery[str],
    version: FromQuery[str | None] = None,
    format: FromQuery[str] = "csv",
) -> Stream:
    return await query_download(hub, request.user, project, dataset, sql, version or None, format)


# --- rules -----------------------------------------------------------------------------------


@get(PAGES + "/rules", access="reporter")
def rules_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str]
) -> Template:
    ctx = dataset_context(hub, project, dataset)
    ctx["rules"] = [{**rule, "name": describe(rule)} for rule in ctx["rules"]]
    ctx["rule_fields"] = RULE_FIELDS
    ctx["can_edit"] = hub.projects.role_of(project, request.user) in EDITORS
    ctx["validation"] = hub.catalog.checks(dataset_id(hub, project, dataset)).get(ctx["latest"])
    ctx["base"] = base_url(project, dataset)
    return Template("dataset_rules.html", context=ctx)


def form_rule(data: dict[str, str]) -> dict[str, Any]:
    """A rule from the add-rule form: numbers parsed, allowed values split at commas."""
    rule: dict[str, Any] = {"type": data.get("type")}
    if data.get("column"):
        rule["column"] = data["column"]
    for key in ("min", "max", "threshold"):
        if data.get(key):
            rule[key] = _number(data[key], key)
    if data.get("values"):
        rule["values"] = [v.strip() for v in data["values"].split(",") if v.strip()]
    return rule


def _number(text: str, key: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"'{key}' must be a number, not {text!r}") from None


@post(PAGES + "/rules", access="developer")
def rules_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    rules = hub.catalog.rules(dataset_id(hub, project, dataset))
    action = data.get("action")
    if action == "check":
        recheck(hub, project, dataset, None)
    else:
        if action == "remove":
            index = _whole(data.get("index"))
            rules = [r for i, r in enumerate(rules) if i != index]
        else:
            rules = [*rules, form_rule(data)]
        set_rules(hub, request.user, project, dataset, rules)
    return _go(request, f"/projects/{project}/datasets/{dataset}/rules")


ROUTES = [
    dataset_page,
    rows_partial,
    profile_partial,
    cell_form,
    change_page,
    tag_page,
    key_page,
    key_suggestion_partial,
    download_page,
    import_page,
    preview_partial,
    upload_page,
    import_job_partial,
    diff_page,
    query_page,
    query_partial,
    query_download_page,
    rules_page,
    rules_form,
]
