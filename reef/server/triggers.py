"""Pipeline triggers and guards over HTTP: the API under
`/api/projects/{p}/pipelines/{name}/triggers` (and `…/guards`, `…/resume`) and the forms of the
pipeline page's "Triggers and guards" section. The logic lives in `reef.runtime.triggers`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Request
from litestar.response import Redirect
from msgspec import UNSET, Meta, UnsetType

from reef.errors import InvalidInput
from reef.server.pipelines import RunStarted
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, patch, post, put
from reef.server.shaped import shaped

BASE = "/api/projects/{project:str}/pipelines/{name:str}"
PAGE = "/projects/{project:str}/pipelines/{name:str}"


class TriggerIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new trigger. `target`: the module (push) or input dataset (dataset) it watches."""

    kind: str
    target: str | None = None
    cron: str | None = None  # five fields: minute hour day-of-month month day-of-week
    timezone: str = "UTC"


class TriggerChange(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool


class GuardsIn(msgspec.Struct, forbid_unknown_fields=True):
    """`debounce_s`: events closer than this start one run. `max_row_drop`: pause when a new
    input version has lost more than this share (0-1) of the previous one's rows."""

    debounce_s: float = 60.0
    max_row_drop: float | None = None


class ResumeIn(msgspec.Struct, forbid_unknown_fields=True):
    comment: str
    run: bool = True  # start a run at once


class TriggerView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A trigger of the pipeline; `cron`, `timezone` and `next_due` for a cron trigger only."""

    id: int
    kind: Annotated[str, Meta(description="push, dataset, cron or manual", examples=["cron"])]
    enabled: bool
    created_by: str
    created_at: datetime
    target: Annotated[
        str | None, Meta(description="the PROJECT/MODULE (push) or dataset (dataset) watched")
    ]
    cron: Annotated[str | UnsetType | None, Meta(examples=["0 6 * * 1-5"])] = UNSET
    timezone: Annotated[str | UnsetType | None, Meta(examples=["UTC"])] = UNSET
    next_due: Annotated[
        datetime | UnsetType | None, Meta(description="when it fires next (UTC)")
    ] = UNSET


class TriggerEvent(msgspec.Struct, forbid_unknown_fields=True):
    """A trigger that fired, waiting out the debounce window or settled."""

    id: int
    trigger_id: int
    kind: str
    ref: Annotated[str | None, Meta(description="the commit sha or DATASET@VERSION that fired")]
    events: Annotated[int, Meta(description="how many events this one stands for")]
    first_at: datetime
    due_at: datetime
    status: Annotated[str, Meta(description="pending, started, skipped or failed")]
    run_id: int | None
    note: Annotated[str | None, Meta(description="why it was skipped or failed")]


class TriggerHistoryEntry(msgspec.Struct, forbid_unknown_fields=True):
    """A change to the pipeline's triggers and guards, from the audit log."""

    id: int
    at: datetime
    actor: str
    action: Annotated[str, Meta(examples=["trigger.create"])]
    target: Annotated[str, Meta(examples=["pipeline iris"])]
    detail: Annotated[str | None, Meta(description="the details, as JSON text")]


class TriggersListing(msgspec.Struct, forbid_unknown_fields=True):
    """The pipeline's triggers, guards, pause state, latest events and history."""

    triggers: list[TriggerView]
    debounce_s: Annotated[float, Meta(description="events closer than this start one run")]
    max_row_drop: Annotated[
        float | None, Meta(description="pause when an input version loses more rows (0-1)")
    ]
    paused: bool
    paused_at: datetime | None
    paused_reason: str | None
    events: Annotated[list[TriggerEvent], Meta(description="the latest 20, newest first")]
    history: Annotated[list[TriggerHistoryEntry], Meta(description="the latest 20, newest first")]


class Resumed(TriggersListing):
    """The pipeline resumed; `run`: the run started at once (null: none asked)."""

    run: int | None


def check_guards(data: GuardsIn) -> GuardsIn:
    if not 0 <= data.debounce_s <= 86400:
        raise InvalidInput("debounce_s: give a number of seconds from 0 to 86400")
    if data.max_row_drop is not None and not 0 < data.max_row_drop <= 1:
        raise InvalidInput("max_row_drop: give a share of rows above 0 and at most 1 (0.2 = 20%)")
    return data


# API ---------------------------------------------------------------------------------
@get(f"{BASE}/triggers", access="reporter")
def triggers_api(hub: HubDep, project: FromPath[str], name: FromPath[str]) -> TriggersListing:
    return shaped(TriggersListing, hub.triggers.listing(project, name))


@post(f"{BASE}/triggers", access="developer", status_code=201)
def add_trigger_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[TriggerIn],
) -> TriggerView:
    fields = msgspec.structs.asdict(data)
    added = hub.triggers.add(project, name, request.user, fields.pop("kind"), **fields)
    return shaped(TriggerView, added)


@patch(f"{BASE}/triggers/{{trigger_id:int}}", access="developer")
def change_trigger_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    trigger_id: FromPath[int],
    data: JSONBody[TriggerChange],
) -> TriggerView:
    changed = hub.triggers.set_enabled(project, name, trigger_id, data.enabled, request.user)
    return shaped(TriggerView, changed)


@delete(f"{BASE}/triggers/{{trigger_id:int}}", access="developer")
def delete_trigger_api(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str],
    trigger_id: FromPath[int],
) -> None:  # fmt: skip
    hub.triggers.delete(project, name, trigger_id, request.user)


@post(f"{BASE}/triggers/{{trigger_id:int}}/fire", access="developer", status_code=201)
def fire_trigger_api(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str],
    trigger_id: FromPath[int],
) -> RunStarted:  # fmt: skip
    return RunStarted(id=hub.triggers.fire(project, name, trigger_id, request.user))


@put(f"{BASE}/guards", access="developer")
def guards_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[GuardsIn],
) -> TriggersListing:
    check_guards(data)
    hub.triggers.set_guards(project, name, data.debounce_s, data.max_row_drop, request.user)
    return shaped(TriggersListing, hub.triggers.listing(project, name))


@post(f"{BASE}/resume", access="developer")
def resume_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[ResumeIn],
) -> Resumed:
    run_id = hub.triggers.resume(project, name, request.user, data.comment, data.run)
    return shaped(Resumed, {**hub.triggers.listing(project, name), "run": run_id})


# pages -------------------------------------------------------------------------------
def _back(project: str, name: str) -> Redirect:
    return Redirect(f"/projects/{project}/pipelines/{name}#triggers")


@post(f"{PAGE}/triggers", access="developer")
def add_trigger_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    fields = {k: data.get(k) for k in ("target", "cron", "timezone")}
    hub.triggers.add(project, name, request.user, data.get("kind", ""), **fields)
    return _back(project, name)


@post(f"{PAGE}/triggers/{{trigger_id:int}}", access="developer")
def trigger_page_action(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    trigger_id: FromPath[int],
    data: Form,
) -> Redirect:
    """The buttons of a trigger's row: enable, disable, fire, delete."""
    action, who = data.get("action"), request.user
    if action in ("enable", "disable"):
        hub.triggers.set_enabled(project, name, trigger_id, action == "enable", who)
    elif action == "fire":
        run_id = hub.triggers.fire(project, name, trigger_id, who)
        return Redirect(f"/projects/{project}/runs/{run_id}")
    elif action == "delete":
        hub.triggers.delete(project, name, trigger_id, who)
    else:
        raise InvalidInput("action: one of enable, disable, fire, delete")
    return _back(project, name)


@post(f"{PAGE}/guards", access="developer")
def guards_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    drop = (data.get("max_row_drop") or "").strip()
    guards = GuardsIn(_number(data.get("debounce_s") or "60", "debounce_s"),
                      _number(drop, "max_row_drop") / 100 if drop else None)  # fmt: skip
    check_guards(guards)
    hub.triggers.set_guards(project, name, guards.debounce_s, guards.max_row_drop, request.user)
    return _back(project, name)


@post(f"{PAGE}/resume", access="developer")
def resume_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    run = data.get("run") == "yes"
    hub.triggers.resume(project, name, request.user, data.get("comment", ""), run)
    return _back(project, name)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{what}: '{text}' is not a number") from None


ROUTES = [
    triggers_api,
    add_trigger_api,
    change_trigger_api,
    delete_trigger_api,
    fire_trigger_api,
    guards_api,
    resume_api,
    add_trigger_page,
    trigger_page_action,
    guards_page,
    resume_page,
]
