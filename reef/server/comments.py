"""Comments on runs, models and dataset versions, with @mentions, and following an item.

A comment reaches the inbox of the item's owners and followers; an @name of a project member
reaches theirs as a mention. An @name of someone who is not a member is not notified, and
the answer says so (`note`). Each page shows the same `_comments.html` fragment, posted with
htmx; the API is the same function with a JSON body.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.response import Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post
from reef.store.people import Principal

KINDS = ("run", "model", "dataset")
# @name, not an e-mail address; a name does not end with the sentence's full stop
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)")
MAX_TEXT = 10_000


def subject_check(hub: Hub, project: str, kind: str, target: str) -> str:
    """The item a comment is on, checked to exist; a dataset is NAME@VERSION."""
    if kind not in KINDS:
        raise InvalidInput(f"comments are on {', '.join(KINDS)}, not {kind!r}")
    p = hub.projects.get(project)
    if kind == "run":
        if not target.isdigit():
            raise InvalidInput(f"a run is named by its number, not {target!r}")
        hub.runs.run_in(project, int(target))
    elif kind == "model":
        hub.models.model_id(p.id, target)
    else:
        name, _, version = target.partition("@")
        target = f"{name}@{hub.datasets.info(project, name, version or None).version}"
    return target


class NewComment(msgspec.Struct, forbid_unknown_fields=True):
    """A comment; an @name of a project member mentions them (it reaches their inbox)."""

    text: Annotated[
        str, msgspec.Meta(max_length=MAX_TEXT, examples=["Looks good, @maria: shall we promote?"])
    ]


class Comment(msgspec.Struct):
    """A comment, oldest first."""

    id: int
    author: str
    text: str
    created_at: datetime


class PostedComment(msgspec.Struct):
    """The comment stored; `note` names @mentions that were not notified (not members)."""

    id: int
    author: str
    text: str
    note: Annotated[
        str | None,
        msgspec.Meta(examples=["@sam not notified: not a member of this project"]),
    ]


def as_comments(rows: list[dict]) -> list[Comment]:
    return [Comment(**c) for c in rows]


def text_of(text: str) -> str:
    if not text.strip():
        raise InvalidInput("text: a comment cannot be empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput("a comment is at most 10,000 characters")
    return text.strip()


def post_comment(
    hub: Hub, who: Principal, project: str, kind: str, target: str, text: str
) -> dict[str, Any]:
    """Store the comment and tell the owners, followers and the members it mentions."""
    text, target = text_of(text), subject_check(hub, project, kind, target)
    pid = hub.projects.get(project).id
    members = {m["user"] for m in hub.projects.members(project)}
    mentioned = set(MENTION.findall(text))
    if kind == "run":
        comment_id = hub.runs.add_comment(int(target), who.name, text)
    else:
        comment_id = hub.inbox.add_comment(pid, kind, target, who.name, text)
    hub.audit.record(who.name, f"{kind}.comment", f"{kind} {target}", project, text=text[:200])
    told = mentioned & members
    hub.inbox.notify(told, "mention", project, (kind, target), who.name, text)
    followers = hub.inbox.followers(pid, kind, target.split("@")[0])
    others = {*hub.inbox.owners(pid, kind, target), *followers}
    hub.inbox.notify(others - told, "comment", project, (kind, target), who.name, text)
    note = None
    if unknown := sorted(mentioned - members):
        names = ", ".join(f"@{n}" for n in unknown)
        note = f"{names} not notified: not a member of this project"
    return {"id": comment_id, "author": who.name, "text": text, "note": note}


def comments_of(hub: Hub, project: str, kind: str, target: str) -> list[dict]:
    target = subject_check(hub, project, kind, target)
    if kind == "run":
        return hub.runs.comments(int(target))
    return hub.inbox.comments(hub.projects.get(project).id, kind, target)


def thread(
    hub: Hub, who: Principal, project: str, kind: str, target: str, note: str | None = None
) -> dict[str, Any]:
    """What `_comments.html` shows: the comments, the form, and the follow button."""
    target = subject_check(hub, project, kind, target)
    pid = hub.projects.get(project).id
    return {
        "project_name": project,
        "kind": kind,
        "target": target,
        "comments": comments_of(hub, project, kind, target),
        "note": note,
        "following": who.name in hub.inbox.followers(pid, kind, target.split("@")[0]),
        "owns": who.name in hub.inbox.owners(pid, kind, target),
    }


BASE = "/projects/{project:str}/comments/{kind:str}/{target:str}"


@get("/api" + BASE, access="reporter")
def comments_api(
    hub: HubDep, project: FromPath[str], kind: FromPath[str], target: FromPath[str]
) -> list[Comment]:
    """The comments on a run (its number), a model (its name) or a dataset version (NAME@V)."""
    return as_comments(comments_of(hub, project, kind, target))


@post("/api" + BASE, access="reporter", status_code=201)
def comment_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    kind: FromPath[str],
    target: FromPath[str],
    data: JSONBody[NewComment],
) -> PostedComment:
    """Comment; `note` names @mentions that were not notified (not members)."""
    return PostedComment(**post_comment(hub, request.user, project, kind, target, data.text))


@get(BASE, access="reporter")
def thread_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    kind: FromPath[str],
    target: FromPath[str],
) -> Template:
    """The comments fragment an item's page loads."""
    return Template("_comments.html", context=thread(hub, request.user, project, kind, target))


@post(BASE, access="reporter", status_code=200)
def comment_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    kind: FromPath[str],
    target: FromPath[str],
    data: Form,
) -> Template:
    done = post_comment(hub, request.user, project, kind, target, data.get("text", ""))
    ctx = thread(hub, request.user, project, kind, target, done["note"])
    return Template("_comments.html", context=ctx)


@post("/projects/{project:str}/follow/{kind:str}/{target:str}", access="reporter", status_code=200)
def follow_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    kind: FromPath[str],
    target: FromPath[str],
    data: Form,
) -> Template:
    """Follow (or stop following) an item: its comments then reach your inbox."""
    subject_check(hub, project, kind, target)
    pid, name = hub.projects.get(project).id, target.split("@")[0]
    hub.inbox.follow(request.user.name, pid, kind, name, data.get("follow") == "yes")
    ctx = thread(hub, request.user, project, kind, target)
    return Template("_comments.html", context=ctx)


ROUTES = [comments_api, comment_api, thread_page, comment_page, follow_page]
