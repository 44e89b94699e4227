"""Project members: add an existing user, change a role, remove. API and page forms share
one function each; the owner rules live in the projects store."""

from __future__ import annotations

from typing import Literal, cast

import msgspec
from litestar import Request
from litestar.response import Redirect

from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, patch, post
from reef.store.people import Principal
from reef.store.projects import ROLE_HELP, ROLES

Role = Literal["reporter", "developer", "maintainer", "owner"]


class NewMember(msgspec.Struct, forbid_unknown_fields=True):
    """An existing user's name and the role they get in the project."""

    user: str
    role: Role


class MemberRole(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


class Member(msgspec.Struct):
    """A member of the project and their role."""

    user: str
    role: Role


def as_members(rows: list[dict]) -> list[Member]:
    return [Member(**m) for m in rows]


def existing_user(hub: Hub, name: object) -> dict:
    """The users row for a member name; a clear 400 when there is no such user."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("'user' is required: pick one of the existing users")
    try:
        return hub.people.user(name)
    except NotFound:
        raise InvalidInput(
            f"there is no user '{name}': pick one of the existing users "
            "(an administrator creates accounts on the users page)"
        ) from None


def set_member(hub: Hub, who: Principal, project: str, name: object, role: object) -> list[dict]:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    user = existing_user(hub, name)
    hub.projects.set_member(project, user, str(role), hub.projects.role_of(project, who))
    hub.audit.record(who.name, "member.set", f"user {user['name']}", project, role=role)
    return hub.projects.members(project)


def remove_member(hub: Hub, who: Principal, project: str, name: str) -> list[dict]:
    user = existing_user(hub, name)
    hub.projects.remove_member(project, user, hub.projects.role_of(project, who))
    hub.audit.record(who.name, "member.remove", f"user {user['name']}", project)
    return hub.projects.members(project)


def members_context(hub: Hub, project: str) -> dict:
    """What the members section of the project page shows: the members, the users one may
    add (enabled, not yet members), and what each role may do."""
    members = hub.projects.members(project)
    taken = {m["user"] for m in members}
    users = hub.people.list_users()
    return {
        "members": members,
        "addable": [u["name"] for u in users if u["name"] not in taken and not u["disabled"]],
        "roles": ROLES,
        "role_help": ROLE_HELP,
    }


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/members", access="reporter")
def members_api(hub: HubDep, project: FromPath[str]) -> list[Member]:
    return as_members(hub.projects.members(project))


@post("/api/projects/{project:str}/members", access="maintainer", status_code=201)
def add_member_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[NewMember]
) -> list[Member]:
    """Add an existing user with a role (or change the role of a member). Only owners grant
    or take away the owner role. The answer: every member."""
    return as_members(set_member(hub, request.user, project, data.user, data.role))


@patch("/api/projects/{project:str}/members/{user:str}", access="maintainer")
def change_member_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    user: FromPath[str],
    data: JSONBody[MemberRole],
) -> list[Member]:
    """Change a member's role. The answer: every member."""
    if user not in {m["user"] for m in hub.projects.members(project)}:
        raise NotFound(f"'{user}' is not a member of project '{project}'")
    return as_members(set_member(hub, request.user, project, user, data.role))


@delete("/api/projects/{project:str}/members/{user:str}", access="maintainer", status_code=200)
def remove_member_api(
    request: Request, hub: HubDep, project: FromPath[str], user: FromPath[str]
) -> list[Member]:
    """Remove a member; the last owner cannot be removed. The answer: the members left."""
    return as_members(remove_member(hub, request.user, project, user))


# pages -------------------------------------------------------------------------------
@post("/projects/{project:str}/members", access="maintainer")
def add_member_page(request: Request, hub: HubDep, project: FromPath[str], data: Form) -> Redirect:
    set_member(hub, request.user, project, data.get("user"), data.get("role"))
    return Redirect(f"/projects/{project}#members")


@post("/projects/{project:str}/members/{user:str}/role", access="maintainer")
def change_member_page(
    request: Request, hub: HubDep, project: FromPath[str], user: FromPath[str], data: Form
) -> Redirect:
    role = cast(Role, data.get("role", ""))  # the store refuses a role it does not know
    change_member_api.fn(request, hub, project, user, MemberRole(role=role))
    return Redirect(f"/projects/{project}#members")


@post("/projects/{project:str}/members/{user:str}/remove", access="maintainer")
def remove_member_page(
    request: Request, hub: HubDep, project: FromPath[str], user: FromPath[str], data: Form
) -> Redirect:
    remove_member(hub, request.user, project, user)
    return Redirect(f"/projects/{project}#members")


ROUTES = [
    members_api,
    add_member_api,
    change_member_api,
    remove_member_api,
    add_member_page,
    change_member_page,
    remove_member_page,
]
