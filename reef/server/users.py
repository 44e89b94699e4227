"""People, for administrators: create (a one-time password, an invite link, or a password the
admin chooses), disable, re-enable, reset a password, delete; and who may create projects.
API and pages."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.response import Redirect, Template

from reef.errors import Conflict, InvalidInput
from reef.hub import Hub
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, patch, post
from reef.store.people import Principal, one_time_password
from reef.store.site_settings import PROJECT_CREATION


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    """A new account. Without `password`, reef makes a one-time password (shown once in the
    answer) or, with `invite`, a link the person opens to choose their own."""

    name: str
    password: str | None = None
    invite: bool = False
    is_admin: bool = False


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; a disabled user can neither sign in nor use their tokens."""

    disabled: bool | None = None
    is_admin: bool | None = None
    may_create_projects: bool | None = None


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    """`invite`: answer a link that lets the person choose a password, instead of a
    one-time password."""

    invite: bool = False


class SiteChange(msgspec.Struct, forbid_unknown_fields=True):
    project_creation: Literal["everyone", "admins", "allowed"]


CreationMode = Annotated[
    str,
    msgspec.Meta(
        description="who may create projects: everyone, admins, or allowed (admins and the "
        "users marked may_create_projects)",
        examples=["everyone"],
    ),
]
OneTimePassword = Annotated[
    str | None,
    msgspec.Meta(description="a one-time password, shown only in this answer (left out "
                 "when there is none)"),
]  # fmt: skip
InviteUrl = Annotated[
    str | None,
    msgspec.Meta(
        description="the link where the person chooses a password, shown only in this answer "
        "(left out when there is none)",
        examples=["http://reef.example:8000/invite/Xy3..."],
    ),
]


class UserOut(msgspec.Struct):
    """An account. `must_change_password`: the person signs in with a one-time password and
    must choose their own before anything else."""

    id: int
    name: str
    is_admin: bool
    created_at: datetime
    disabled: bool
    may_create_projects: bool
    must_change_password: bool


class CreatedUser(UserOut, omit_defaults=True):
    """The new account, with the way in reef chose for it (when the admin chose none)."""

    password: OneTimePassword = None
    invite_url: InviteUrl = None


class NewSecret(msgspec.Struct, omit_defaults=True):
    """A fresh way in for `user`: `password` or `invite_url`, shown once."""

    user: str
    password: OneTimePassword = None
    invite_url: InviteUrl = None


class SiteSettings(msgspec.Struct):
    project_creation: CreationMode


def user_out(row: dict[str, Any]) -> UserOut:
    return UserOut(**row)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def new_secret(hub: Hub, name: str, invite: bool, base: str) -> dict[str, Any]:
    """A fresh way in for `name`, shown once: a one-time password, or an invite link. The
    old password stops working either way, and the person's browser sessions end."""
    password = secrets.token_urlsafe(24) if invite else one_time_password()
    hub.people.set_password(name, password, must_change=True)
    if invite:
        return {"invite_url": f"{base}/invite/{hub.people.issue_invite(name)}"}
    return {"password": password}


def create_user(hub: Hub, who: Principal, body: NewUser, base: str) -> dict[str, Any]:
    chosen = body.password is not None
    # a password the admin chose, or a random one that new_secret replaces
    start = body.password if body.password is not None else secrets.token_urlsafe(24)
    hub.people.create_user(body.name, start, body.is_admin)
    hub.audit.record(who.name, "user.create", f"user {body.name}")
    shown = {} if chosen else new_secret(hub, body.name, body.invite, base)
    return {**hub.people.user(body.name), **shown}


def reset_password(hub: Hub, who: Principal, name: str, invite: bool, base: str) -> dict:
    hub.people.user(name)
    shown = new_secret(hub, name, invite, base)
    hub.audit.record(who.name, "user.reset_password", f"user {name}", invite=invite)
    return {"user": name, **shown}


def change_user(hub: Hub, who: Principal, name: str, change: UserChange) -> dict:
    flags = {k: v for k, v in msgspec.structs.asdict(change).items() if v is not None}
    if not flags:
        raise InvalidInput("send at least one of 'disabled', 'is_admin', 'may_create_projects'")
    if name == who.name and (flags.get("disabled") or flags.get("is_admin") is False):
        raise Conflict("you cannot disable your own account or take away your own admin rights")
    user = hub.people.set_flags(name, **flags)
    hub.audit.record(who.name, "user.update", f"user {name}", **flags)
    return user


def delete_user(hub: Hub, who: Principal, name: str) -> None:
    if name in (who.name, "admin"):
        raise Conflict(f"'{name}' cannot be deleted (yourself or the built-in admin): disable it")
    hub.people.delete_user(name)
    hub.audit.record(who.name, "user.delete", f"user {name}")


def admin_context(hub: Hub, shown: dict | None = None) -> dict[str, Any]:
    return {
        "users": hub.people.list_users(),
        "project_creation": hub.site.project_creation(),
        "creation_modes": PROJECT_CREATION,
        "shown": shown,
    }


# API ---------------------------------------------------------------------------------
@get("/api/users", access="admin")
def users_api(hub: HubDep) -> list[UserOut]:
    return [user_out(u) for u in hub.people.list_users()]


@post("/api/users", access="admin", status_code=201)
def create_user_api(request: Request, hub: HubDep, data: JSONBody[NewUser]) -> CreatedUser:
    """Create an account; the answer carries `password` or `invite_url` once when reef
    chose the way in."""
    return CreatedUser(**create_user(hub, request.user, data, base_url(request)))


@get("/api/users/{name:str}", access="admin")
def user_api(hub: HubDep, name: FromPath[str]) -> UserOut:
    return user_out(hub.people.user(name))


@patch("/api/users/{name:str}", access="admin")
def change_user_api(
    request: Request, hub: HubDep, name: FromPath[str], data: JSONBody[UserChange]
) -> UserOut:
    return user_out(change_user(hub, request.user, name, data))


@post("/api/users/{name:str}/reset-password", access="admin", status_code=200)
def reset_password_api(
    request: Request, hub: HubDep, name: FromPath[str], data: JSONBody[PasswordReset | None] = None
) -> NewSecret:
    """A new one-time password (or invite link); the person's browser sessions end."""
    invite = data.invite if data else False
    return NewSecret(**reset_password(hub, request.user, name, invite, base_url(request)))


@delete("/api/users/{name:str}", access="admin", status_code=204)
def delete_user_api(request: Request, hub: HubDep, name: FromPath[str]) -> None:
    delete_user(hub, request.user, name)


@get("/api/site-settings", access="admin")
def site_settings_api(hub: HubDep) -> SiteSettings:
    return SiteSettings(hub.site.project_creation())


@patch("/api/site-settings", access="admin")
def change_site_settings_api(
    request: Request, hub: HubDep, data: JSONBody[SiteChange]
) -> SiteSettings:
    hub.site.set_project_creation(data.project_creation)
    hub.audit.record(request.user.name, "site.update", "site", mode=data.project_creation)
    return SiteSettings(hub.site.project_creation())


# pages -------------------------------------------------------------------------------
@get("/admin/users", access="admin")
def admin_page(hub: HubDep) -> Template:
    return Template("admin_users.html", context=admin_context(hub))


@post("/admin/users", access="admin", status_code=200)
def create_user_page(request: Request, hub: HubDep, data: Form) -> Template:
    how = data.get("how")
    body = NewUser(
        name=data.get("name", ""),
        password=data.get("password", "") if how == "chosen" else None,
        invite=how == "invite",
        is_admin=data.get("is_admin") == "on",
    )
    made = create_user(hub, request.user, body, base_url(request))
    return Template("admin_users.html", context=admin_context(hub, {"user": body.name, **made}))


@post("/admin/users/{name:str}/reset", access="admin", status_code=200)
def reset_password_page(request: Request, hub: HubDep, name: FromPath[str], data: Form) -> Template:
    made = reset_password(hub, request.user, name, data.get("how") == "invite", base_url(request))
    return Template("admin_users.html", context=admin_context(hub, made))


@post("/admin/users/{name:str}/{flag:str}", access="admin")
def flag_user_page(
    request: Request, hub: HubDep, name: FromPath[str], flag: FromPath[str], data: Form
) -> Redirect:
    """disable, enable, allow-projects, deny-projects, or delete."""
    changes = {
        "disable": UserChange(disabled=True),
        "enable": UserChange(disabled=False),
        "allow-projects": UserChange(may_create_projects=True),
        "deny-projects": UserChange(may_create_projects=False),
    }
    if flag == "delete":
        delete_user(hub, request.user, name)
    elif flag in changes:
        change_user(hub, request.user, name, changes[flag])
    else:
        raise InvalidInput(f"unknown user action {flag!r}")
    return Redirect("/admin/users")


@post("/admin/settings", access="admin")
def site_settings_page(request: Request, hub: HubDep, data: Form) -> Redirect:
    mode = data.get("project_creation", "")
    hub.site.set_project_creation(mode)
    hub.audit.record(request.user.name, "site.update", "site", mode=mode)
    return Redirect("/admin/users")


ROUTES = [
    users_api,
    create_user_api,
    user_api,
    change_user_api,
    reset_password_api,
    delete_user_api,
    site_settings_api,
    change_site_settings_api,
    admin_page,
    create_user_page,
    reset_password_page,
    flag_user_page,
    site_settings_page,
]
