"""Labeling pages (HTMX): choose the label column and labels, label one item at a time with
the keyboard (reef/static/reef-labeling.js), assign rows to annotators, review
disagreements, publish the agreed labels as one version; and the dataset page's labeling
summary with the annotators' agreement. The JSON API is `reef.server.labeling_api`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import anyio
import pyarrow as pa
from litestar import Request, Response
from litestar.response import Template

from reef.errors import InvalidInput, ReefError
from reef.hub import Hub
from reef.runtime import label_queue, labeling
from reef.server.dataset_pages import _go, _whole
from reef.server.labeling_api import agreement_of, retrain, review_listing
from reef.server.routes import Form, FromPath, FromQuery, HubDep, get, post
from reef.store.dataset_changes import rows_by_id
from reef.store.projects import rank

PAGE = "/projects/{project:str}/datasets/{dataset:str}/labeling"
KAPPA_HELP = (
    "Kappa measures how often people gave the same label, beyond the agreement you would "
    "expect if they had picked labels at random with the same mix: 1 means they always agree, "
    "0 means no better than chance, below 0 worse than chance. Above 0.6 is usually good "
    "enough to train on; below 0.4 the labels or their instructions need a closer look."
)


def _url(project: str, dataset: str, path: str = "", **query: Any) -> str:
    query = {k: v for k, v in query.items() if v not in (None, "")}
    tail = f"?{urlencode(query)}" if query else ""
    return f"/projects/{project}/datasets/{dataset}/labeling{path}{tail}"


def _role(hub: Hub, project: str, who: Any) -> int:
    return rank(hub.projects.role_of(project, who))


@get(PAGE, access="reporter")
def labeling_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str],
    column: FromQuery[str] = "", filter: FromQuery[str] = "todo", setup: FromQuery[bool] = False,
) -> Template:  # fmt: skip
    _, dataset_id = labeling.dataset_ids(hub, project, dataset)
    sets = hub.annotations.label_sets(dataset_id)
    column = column or next(iter(sets), "")
    role = _role(hub, project, request.user)
    ctx: dict[str, Any] = {
        "project": hub.projects.get(project), "dataset": dataset, "sets": sets,
        "column": column, "filter": filter, "filters": labeling.FILTERS,
        "can_setup": role >= rank("developer"), "can_manage": role >= rank("maintainer"),
        "base": _url(project, dataset), "data_base": f"/projects/{project}/datasets/{dataset}",
        "columns": [c for c, _ in hub.datasets.info(project, dataset).columns],
    }  # fmt: skip
    if setup or column not in sets:
        return Template("labeling_setup.html", context=ctx)
    t = labeling.task(hub, project, dataset, column)
    ctx.update(_item_context(hub, request.user, t, filter, None, None))
    ctx["members"] = [m["user"] for m in hub.projects.members(project)]
    ctx["review_required"] = hub.annotations.review_required(t.project_id)
    served = label_queue.model_for(hub, t)
    ctx["retrain_model"] = served.name if served else None
    return Template("labeling.html", context=ctx)


def _item_context(
    hub: Hub, who: Any, t: labeling.Task, filter: str, row: int | None, after: int | None,
    skip: bool = False,
) -> dict[str, Any]:  # fmt: skip
    q = label_queue.queue(hub, t, who, filter)
    shown = row if row is not None else label_queue.following(q, after, skip_current=skip)
    item = label_queue.item(hub, t, who, q, shown, filter) if shown is not None else None
    return {
        "item": item, "labels": t.labels, "column": t.column, "filter": filter,
        "progress": label_queue.progress(q), "model": q.suggestions.model,
        "base": _url(t.project, t.dataset), "left": len(q.kept),
    }  # fmt: skip


@post(PAGE + "/setup", access="developer")
def setup_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    column = data.get("new_column") or data.get("column") or ""
    made = labeling.create_label_set(hub, request.user, project, dataset, column,
                                     data.get("labels", ""))  # fmt: skip
    return _go(request, _url(project, dataset, column=made["column"]))


@get(PAGE + "/item", access="reporter")
def item_partial(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str],
    column: FromQuery[str], filter: FromQuery[str] = "todo", row: FromQuery[int | None] = None,
    after: FromQuery[int | None] = None,
) -> Template:  # fmt: skip
    """An item: `row`, or the next one after `after` (skip), or the first of the queue."""
    t = labeling.task(hub, project, dataset, column)
    ctx = _item_context(hub, request.user, t, filter, row, after, skip=after is not None)
    return Template("_label_item.html", context=ctx)


@post(PAGE + "/label", access="reporter")
def label_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Template:
    """Save a draft label and answer with the next item; a refused label re-shows the item
    with the reason."""
    t = labeling.task(hub, project, dataset, data.get("column", ""))
    filter, row = data.get("filter") or "todo", _whole(data.get("row"))
    try:
        labeling.save(hub, request.user, t, row, data.get("label"))
    except ReefError as e:
        ctx = _item_context(hub, request.user, t, filter, row, None)
        return Template("_label_item.html", context={**ctx, "error": e.message},
                        status_code=e.status)  # fmt: skip
    ctx = _item_context(hub, request.user, t, filter, None, row)
    return Template("_label_item.html", context={**ctx, "saved": row})


@post(PAGE + "/undo", access="reporter")
def undo_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Template:
    t = labeling.task(hub, project, dataset, data.get("column", ""))
    filter = data.get("filter") or "todo"
    row = labeling.undo(hub, request.user, t)
    ctx = _item_context(hub, request.user, t, filter, row, None)
    note = f"took back your label of row {row}" if row is not None else "nothing to undo"
    return Template("_label_item.html", context={**ctx, "note": note})


@get(PAGE + "/image", access="reporter")
def image_file(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], row: FromQuery[int],
    column: FromQuery[str] = "image",
) -> Response:  # fmt: skip
    """The image of a row (the bytes as stored; the browser reads the format)."""
    ds = hub.datasets.open(project, dataset)
    if column not in ds.schema.names:
        raise InvalidInput(f"dataset {dataset!r} has no column {column!r}")
    table = rows_by_id(ds, [row])
    if table.num_rows == 0:
        raise InvalidInput(f"no row with row id {row}")
    data = table[column][0].as_py() or b""
    return Response(data, media_type=_image_type(data), headers={"cache-control": "private"})


def _image_type(data: bytes) -> str:
    kinds = {b"\x89PNG": "image/png", b"\xff\xd8": "image/jpeg", b"GIF8": "image/gif",
             b"RIFF": "image/webp", b"BM": "image/bmp"}  # fmt: skip
    return next((m for magic, m in kinds.items() if data.startswith(magic)), "image/png")


@post(PAGE + "/assign", access="maintainer")
async def assign_form(request: Request, project: FromPath[str], dataset: FromPath[str]) -> Any:
    """Annotators ticked (`annotator`, repeated), `per_row`, `share` (percent) or `where`."""
    form = await request.form()
    data = {k: form.get(k) for k in form}
    hub: Hub = request.app.state.hub
    column = await anyio.to_thread.run_sync(
        _assign, hub, request.user, project, dataset, data, form.getall("annotator")
    )
    return _go(request, _url(project, dataset, column=column))


def _assign(hub: Hub, who: Any, project: str, dataset: str, data: dict, people: list[str]) -> str:
    t = labeling.task(hub, project, dataset, str(data.get("column") or ""))
    share = _percent(str(data.get("share") or ""))
    per_row = _whole(str(data.get("per_row") or "1"))
    where = str(data.get("where") or "") or None
    labeling.assign(hub, who, t, [str(p) for p in people], per_row, share, where)
    return t.column


def _percent(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text) / 100
    except ValueError:
        raise InvalidInput(f"the share of rows is a percentage, not {text!r}") from None


@post(PAGE + "/publish", access="developer")
def publish_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    t = labeling.task(hub, project, dataset, data.get("column", ""))
    labeling.publish(hub, request.user, t, data.get("message") or None)
    return _go(request, f"/projects/{project}/datasets/{dataset}")


@post(PAGE + "/retrain", access="developer")
def retrain_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    t = labeling.task(hub, project, dataset, data.get("column", ""))
    started = retrain(hub, request.user, t)
    return _go(request, f"/projects/{project}/runs/{started.run}")


@post(PAGE + "/settings", access="maintainer")
def settings_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Response:
    required = data.get("review_required") == "on"
    labeling.review_setting(hub, request.user, project, required)
    return _go(request, _url(project, dataset, column=data.get("column")))


# --- review and agreement --------------------------------------------------------------------


@get(PAGE + "/review", access="reporter")
def review_page(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str],
    column: FromQuery[str],
) -> Template:  # fmt: skip
    t = labeling.task(hub, project, dataset, column)
    ctx = {**review_listing(hub, t), "project": hub.projects.get(project), "dataset": dataset,
           "column": column, "base": _url(project, dataset), "texts": _texts(hub, t),
           "can_review": _role(hub, project, request.user) >= rank("maintainer")}  # fmt: skip
    return Template("labeling_review.html", context=ctx)


def _texts(hub: Hub, t: labeling.Task) -> dict[int, str]:
    """A short text of each disputed row, so the reviewer sees what was labelled."""
    rows = labeling.disagreements(hub, t)
    if not rows:
        return {}
    table = rows_by_id(hub.datasets.open(t.project, t.dataset), rows)
    shown = [f.name for f in table.schema if f.name != t.column and pa.types.is_string(f.type)]
    ids = table["_rowid"].to_pylist()
    values = [" · ".join(str(table[c][i].as_py())[:200] for c in shown) for i in range(len(ids))]
    return dict(zip(ids, values, strict=True))


@post(PAGE + "/resolve", access="maintainer")
def resolve_form(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str], data: Form
) -> Template:
    t = labeling.task(hub, project, dataset, data.get("column", ""))
    made = labeling.resolve(hub, request.user, t, _whole(data.get("row")), data.get("label"))
    return Template("_label_decision.html", context={"decision": made})


@get(PAGE + "/summary", access="reporter")
def summary_partial(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str]
) -> Template:
    """The dataset page's labeling card: each label set with its agreement."""
    _, dataset_id = labeling.dataset_ids(hub, project, dataset)
    sets = []
    for column in hub.annotations.label_sets(dataset_id):
        t = labeling.task(hub, project, dataset, column)
        sets.append({"column": column, "labels": t.labels, **agreement_of(hub, t)})
    ctx = {"sets": sets, "base": _url(project, dataset), "kappa_help": KAPPA_HELP,
           "can_setup": _role(hub, project, request.user) >= rank("developer")}  # fmt: skip
    return Template("_label_summary.html", context=ctx)


ROUTES = [
    labeling_page,
    setup_form,
    item_partial,
    label_form,
    undo_form,
    image_file,
    assign_form,
    publish_form,
    retrain_form,
    settings_form,
    review_page,
    resolve_form,
    summary_partial,
]
