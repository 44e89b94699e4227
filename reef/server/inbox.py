"""Each person's inbox: the page, the header badge (a small polled fragment) and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.response import Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.routes import Form, FromQuery, HubDep, JSONBody, get, post
from reef.server.wording import inbox_sentence


class InboxEntry(msgspec.Struct):
    """One thing that happened to something you own or follow, or a mention of you."""

    id: int
    kind: str  # comment | mention | feedback (more kinds may come: run_failed, approval...)
    project: str
    subject_kind: str  # run | model | dataset
    subject: str  # run id, model name, dataset NAME@VERSION
    actor: str
    text: str
    sentence: str  # "alice commented on run 12"
    link: str | None
    created_at: datetime
    read: bool


class InboxAnswer(msgspec.Struct):
    unread: int
    entries: list[InboxEntry]


class MarkRead(msgspec.Struct):
    """Mark the entries `ids` read, or every entry when `ids` is left out."""

    ids: list[int] | None = None


class Marked(msgspec.Struct):
    marked: int
    unread: int


def entries(hub: Hub, user: str, unread_only: bool = False) -> list[InboxEntry]:
    out = []
    for e in hub.inbox.entries(user, unread_only):
        sentence, link = inbox_sentence(e)
        fields = {k: e[k] for k in ("id", "kind", "project", "subject_kind", "subject", "actor")}
        out.append(
            InboxEntry(
                **fields, text=e["text"], sentence=sentence, link=link,
                created_at=e["created_at"], read=e["read_at"] is not None,
            )
        )  # fmt: skip
    return out


def page_context(hub: Hub, user: str) -> dict[str, Any]:
    items = entries(hub, user)
    return {"entries": items, "unread": sum(not e.read for e in items)}


@get("/api/inbox", access="user")
def inbox_api(request: Request, hub: HubDep, unread: FromQuery[bool] = False) -> InboxAnswer:
    """Your inbox, newest first; `?unread=true` for the unread entries only."""
    items = entries(hub, request.user.name, unread)
    return InboxAnswer(unread=hub.inbox.unread(request.user.name), entries=items)


@post("/api/inbox/read", access="user", status_code=200)
def read_api(request: Request, hub: HubDep, data: JSONBody[MarkRead]) -> Marked:
    marked = hub.inbox.mark_read(request.user.name, data.ids)
    return Marked(marked=marked, unread=hub.inbox.unread(request.user.name))


@get("/inbox", access="user")
def inbox_page(request: Request, hub: HubDep) -> Template:
    return Template("inbox.html", context=page_context(hub, request.user.name))


@get("/inbox/badge", access="user")
def badge(request: Request, hub: HubDep) -> Template:
    """The header badge: a fragment the header polls, so the count stays current."""
    return Template("_inbox_badge.html", context={"unread": hub.inbox.unread(request.user.name)})


@post("/inbox/read", access="user", status_code=200)
def read_page(request: Request, hub: HubDep, data: Form) -> Template:
    """Mark one entry (`id`) or all read; answers the list, and the badge refreshes."""
    raw = data.get("id")
    if raw is not None and not raw.isdigit():
        raise InvalidInput(f"'id' must be an entry number, got {raw!r}")
    hub.inbox.mark_read(request.user.name, [int(raw)] if raw else None)
    ctx = page_context(hub, request.user.name)
    return Template("_inbox_list.html", context=ctx, headers={"HX-Trigger": "inbox-read"})


ROUTES = [inbox_api, read_api, inbox_page, badge, read_page]
