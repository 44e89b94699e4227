"""Who is calling (bearer token, HTTP Basic, or session cookie) and what they may do."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Annotated

import anyio
import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.response import Redirect, Template

from reef.errors import (
    InvalidInput,
    NotAuthenticated,
    PasswordChangeRequired,
    PermissionDenied,
    TooManyRequests,
)
from reef.hub import Hub
from reef.server.routes import Form, FromQuery, HubDep, get, post
from reef.store.people import Principal, TokenExpired
from reef.store.ttl_cache import MISSING

SESSION_COOKIE = "reef_session"


class TokenIssued(msgspec.Struct):
    """A new API token (shown only here) and the user it acts as."""

    token: Annotated[str, msgspec.Meta(description="send it as 'Authorization: Bearer TOKEN'")]
    user: str


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets `request.user` to a Principal, or None for an anonymous caller."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        hub: Hub = connection.app.state.hub
        header = connection.headers.get("authorization", "")
        who = None
        if header.lower().startswith("bearer "):
            who = await resolve(hub, header[7:].strip(), ("api", "run"))
            if who is None:
                raise NotAuthenticated(
                    "the bearer token is unknown or revoked, or its user is disabled"
                )
        elif header.lower().startswith("basic "):  # scrypt: never on the event loop
            address = client_address(connection, hub.settings.trust_proxy)
            who = await anyio.to_thread.run_sync(basic_principal, hub, header[6:].strip(), address)
        elif (cookie := connection.cookies.get(SESSION_COOKIE)) and not is_api(connection):
            try:
                who = await resolve(hub, cookie, ("session",))
            except TokenExpired:
                who = None  # an old session: the page sends the person to sign in
        return AuthenticationResult(user=who, auth=None)


async def resolve(hub: Hub, token: str, kinds: tuple[str, ...]) -> Principal | None:
    """A token's principal: from the cache on the event loop, else from DuckDB in a thread."""
    cached = hub.people.cached_token(token, kinds)
    if cached is MISSING:
        return await anyio.to_thread.run_sync(hub.people.resolve_token, token, kinds)
    return cached


def basic_principal(hub: Hub, encoded: str, address: str = "") -> Principal:
    """HTTP Basic: the password may be the user's password or one of their API tokens."""
    try:
        name, _, secret = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("malformed HTTP Basic credentials") from None
    token_user = hub.people.resolve_token(secret, ("api",))
    if token_user is not None and token_user.name == name:
        return token_user
    return hub.people.check_password(name, secret, address)


def client_address(connection: ASGIConnection, trust_proxy: bool) -> str:
    """The caller's address; behind a trusted proxy, the first one in X-Forwarded-For."""
    forwarded = connection.headers.get("x-forwarded-for", "") if trust_proxy else ""
    if forwarded:
        return forwarded.split(",")[0].strip()
    return connection.client.host if connection.client else ""


def secure_cookies(request: Request, hub: Hub) -> bool:
    """Whether cookies get `Secure`: always with --secure-cookies, or when a trusted proxy
    says the browser came over HTTPS."""
    proto = request.headers.get("x-forwarded-proto", "") if hub.settings.trust_proxy else ""
    return hub.settings.secure_cookies or proto.lower() == "https"


def is_api(connection: ASGIConnection) -> bool:
    return connection.url.path.startswith("/api/")


def access_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The one place that decides whether a caller may use a handler."""
    access = handler.opt.get("access", "user")
    method = connection.scope.get("method")  # None: a websocket
    if access == "public" or method == "OPTIONS":  # Litestar's own answer: Allow
        return
    who: Principal | None = connection.scope.get("user")
    if who is None:
        raise NotAuthenticated("sign in first: send 'Authorization: Bearer <token>'")
    if who.via == "run":
        check_run_token(connection, handler, who)
    if who.must_change and not handler.opt.get("first_password"):
        raise PasswordChangeRequired(
            "you signed in with a one-time password: choose your own on the account page "
            "(/account, or POST /api/account/password) before anything else"
        )
    if access == "user":
        return
    if access == "admin":
        if not who.is_admin:
            raise PermissionDenied("this needs an administrator")
        return
    project = connection.path_params.get("project")
    hub: Hub = connection.app.state.hub
    hub.projects.require(project or "", who, access)  # no project: not found


def check_run_token(connection: ASGIConnection, handler: BaseRouteHandler, who: Principal) -> None:
    if not handler.opt.get("run_token") or connection.path_params.get("run_id") != who.run_id:
        raise PermissionDenied("a run token may only report to its own run")


@post("/api/tokens", access="user", status_code=201)
def create_token(
    request: Request,
    hub: HubDep,
    label: FromQuery[str] = "api",
    expires_days: FromQuery[int | None] = None,
) -> TokenIssued:
    """Exchange HTTP Basic credentials for an API token (only its hash is stored), valid
    for `expires_days` days when given."""
    who: Principal = request.user
    if who.via == "run":
        raise PermissionDenied("a run token cannot create tokens")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInput("'expires_days' must be between 1 and 3650")
    ttl = timedelta(days=expires_days) if expires_days else None
    token = hub.people.issue_token(who.user_id, "api", label, ttl=ttl)
    hub.audit.record(who.name, "token.create", f"user {who.name}", label=label)
    return TokenIssued(token, who.name)


@get("/login", access="public")
def login_page(next: FromQuery[str] = "/", welcome: FromQuery[bool] = False) -> Template:
    notice = "Your password is set: sign in with it." if welcome else None
    context = {"next": safe_next(next), "error": None, "notice": notice}
    return Template("login.html", context=context)


@post("/login", access="public")
def login(request: Request, hub: HubDep, data: Form) -> Response:
    target = safe_next(data.get("next", "/"))
    address = client_address(request, hub.settings.trust_proxy)
    try:
        who = hub.people.check_password(data.get("username", ""), data.get("password", ""), address)
    except (NotAuthenticated, TooManyRequests) as e:
        context = {"next": target, "error": e.message, "notice": None}
        return Template("login.html", context=context, status_code=e.status)
    token = hub.people.issue_token(who.user_id, "session", "browser", ttl=hub.people.session_ttl())
    hub.audit.record(who.name, "session.login", f"user {who.name}")
    if hub.people.user(who.name)["must_change_password"]:
        target = "/account?first=1"  # a one-time password: choose one's own first
    cookie = Cookie(
        key=SESSION_COOKIE,
        value=token,
        httponly=True,
        secure=secure_cookies(request, hub),
        samesite="lax",
        path="/",
        max_age=int(hub.people.session_ttl().total_seconds()),
    )
    return Redirect(target, cookies=[cookie])


@post("/logout", access="user", first_password=True)
def logout(request: Request, hub: HubDep) -> Response:
    if token := request.cookies.get(SESSION_COOKIE):
        hub.people.revoke_token(token)
    return Redirect("/login", cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")])


def safe_next(target: str) -> str:
    """Only same-site paths after login (no open redirect)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def require_field(data: dict, key: str, kind: type = str) -> object:
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise InvalidInput(f"field '{key}' is required ({kind.__name__})")
    return data[key]


ROUTES = [create_token, login_page, login, logout]
