"""Each person's account: change the password, manage API tokens (shown once at creation);
and the invite link through which a new person chooses their password."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.response import Redirect, Template

from reef.errors import InvalidInput, PermissionDenied
from reef.hub import Hub
from reef.server.auth import SESSION_COOKIE
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, post
from reef.server.users import UserOut, user_out
from reef.store.people import Principal, check_name, token_hash

MAX_DAYS = 3650


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current: str
    new: str


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    """An API token's name and, optionally, how many days it stays valid (1 to 3650)."""

    name: str
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] | None = None


class InviteAnswer(msgspec.Struct, forbid_unknown_fields=True):
    password: str


class TokenInfo(msgspec.Struct):
    """One of your API tokens (never the token itself: only its hash is stored)."""

    id: Annotated[
        str,
        msgspec.Meta(description="the start of the token's hash (to revoke it)",
                     examples=["4b2b1b477e49794b"]),
    ]  # fmt: skip
    name: Annotated[str, msgspec.Meta(examples=["laptop"])]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: Annotated[datetime | None, msgspec.Meta(description="null: never expires")]
    expired: bool


class IssuedToken(TokenInfo):
    """A new API token: `token` is in this answer only."""

    token: Annotated[str, msgspec.Meta(description="send it as 'Authorization: Bearer TOKEN'")]
    user: str


class Account(msgspec.Struct):
    """Your account and your API tokens."""

    user: UserOut
    tokens: list[TokenInfo]


class PasswordChanged(msgspec.Struct):
    user: str
    changed: bool


class InviteAccepted(msgspec.Struct):
    """The account whose password was chosen: sign in with it now."""

    user: str


def tokens_of(hub: Hub, who: Principal) -> list[TokenInfo]:
    return [TokenInfo(**t) for t in hub.people.api_tokens(who.user_id)]


def person(who: Principal) -> Principal:
    if who.via == "run":
        raise PermissionDenied("a run token cannot manage an account")
    return who


def issue_api_token(hub: Hub, who: Principal, name: str, days: int | None) -> dict[str, Any]:
    """A new API token of `who`; the token itself is in this answer only."""
    check_name("token", name)
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"'expires_days' must be between 1 and {MAX_DAYS}")
    ttl = timedelta(days=days) if days else None
    token = hub.people.issue_token(who.user_id, "api", name, ttl=ttl)
    hub.audit.record(who.name, "token.create", f"user {who.name}", label=name, days=days)
    made = token_hash(token)[:16]
    listed = next(t for t in hub.people.api_tokens(who.user_id) if t["id"] == made)
    return {**listed, "token": token, "user": who.name}


def account_context(hub: Hub, who: Principal, **extra: Any) -> dict[str, Any]:
    user = hub.people.user(who.name)
    return {
        "user": user,
        "tokens": hub.people.api_tokens(who.user_id),
        "new_token": None,
        "notice": None,
        **extra,
    }


def optional_days(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput("'expires_days' must be a whole number of days")
    return int(text)


# API ---------------------------------------------------------------------------------
@get("/api/account", access="user", first_password=True)
def account_api(request: Request, hub: HubDep) -> Account:
    who = person(request.user)
    return Account(user_out(hub.people.user(who.name)), tokens_of(hub, who))


@post("/api/account/password", access="user", status_code=200, first_password=True)
def password_api(request: Request, hub: HubDep, data: JSONBody[PasswordChange]) -> PasswordChanged:
    """Change one's password; one's other browser sessions end."""
    who = person(request.user)
    keep = request.cookies.get(SESSION_COOKIE)
    hub.people.change_own_password(who, data.current, data.new, keep)
    hub.audit.record(who.name, "user.password", f"user {who.name}")
    return PasswordChanged(who.name, True)


@get("/api/account/tokens", access="user")
def tokens_api(request: Request, hub: HubDep) -> list[TokenInfo]:
    return tokens_of(hub, person(request.user))


@post("/api/account/tokens", access="user", status_code=201)
def new_token_api(request: Request, hub: HubDep, data: JSONBody[NewToken]) -> IssuedToken:
    return IssuedToken(**issue_api_token(hub, person(request.user), data.name, data.expires_days))


@delete("/api/account/tokens/{token_id:str}", access="user", status_code=204)
def revoke_token_api(request: Request, hub: HubDep, token_id: FromPath[str]) -> None:
    who = person(request.user)
    hub.people.revoke_api_token(who.user_id, token_id)
    hub.audit.record(who.name, "token.revoke", f"user {who.name}", token=token_id)


@post("/api/invites/{token:str}", access="public", status_code=200)
def accept_invite_api(
    hub: HubDep, token: FromPath[str], data: JSONBody[InviteAnswer]
) -> InviteAccepted:
    """Choose a password through an invite link's token (one use)."""
    name = hub.people.accept_invite(token, data.password)
    hub.audit.record(name, "user.invite_accepted", f"user {name}")
    return InviteAccepted(name)


# pages -------------------------------------------------------------------------------
@get("/account", access="user", first_password=True)
def account_page(request: Request, hub: HubDep) -> Template:
    return Template("account.html", context=account_context(hub, person(request.user)))


@post("/account/password", access="user", status_code=200, first_password=True)
def password_page(request: Request, hub: HubDep, data: Form) -> Template:
    if data.get("new") != data.get("repeat"):
        raise InvalidInput("the two new passwords differ")
    password_api.fn(request, hub, PasswordChange(data.get("current", ""), data.get("new", "")))
    ctx = account_context(hub, request.user, notice="Your password was changed.")
    return Template("account.html", context=ctx)


@post("/account/tokens", access="user", status_code=200)
def new_token_page(request: Request, hub: HubDep, data: Form) -> Template:
    who = person(request.user)
    made = issue_api_token(hub, who, data.get("name", ""), optional_days(data.get("expires_days")))
    return Template("account.html", context=account_context(hub, who, new_token=made))


@post("/account/tokens/{token_id:str}/revoke", access="user")
def revoke_token_page(
    request: Request, hub: HubDep, token_id: FromPath[str], data: Form
) -> Redirect:
    revoke_token_api.fn(request, hub, token_id)
    return Redirect("/account")


@get("/invite/{token:str}", access="public")
def invite_page(hub: HubDep, token: FromPath[str]) -> Template:
    name = hub.people.invited(token)
    return Template("invite.html", context={"name": name, "token": token})


@post("/invite/{token:str}", access="public")
def accept_invite_page(hub: HubDep, token: FromPath[str], data: Form) -> Redirect:
    if data.get("password") != data.get("repeat"):
        raise InvalidInput("the two passwords differ")
    accept_invite_api.fn(hub, token, InviteAnswer(data.get("password", "")))
    return Redirect("/login?welcome=1")


ROUTES = [
    account_api,
    password_api,
    tokens_api,
    new_token_api,
    revoke_token_api,
    accept_invite_api,
    account_page,
    password_page,
    new_token_page,
    revoke_token_page,
    invite_page,
    accept_invite_page,
]
