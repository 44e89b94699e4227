"""One place that turns errors into HTTP: JSON `{"detail": ...}` for the API, a page for the UI."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap

from reef.errors import NotAuthenticated, PasswordChangeRequired, ReefError
from reef.server.routes import from_htmx

log = logging.getLogger("reef.server")
FIRST_PASSWORD = {"action": "change_password", "page": "/account?first=1"}


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/healthz" or path.startswith("/schema")


def render_error(request: Request, status: int, message: str, extra: object = None) -> Response:
    if _wants_json(request):
        body: dict = {"detail": message, "status": status}
        if extra:
            body["extra"] = extra
        headers = {"WWW-Authenticate": 'Bearer realm="reef"'} if status == 401 else None
        return Response(body, status_code=status, headers=headers)
    if status == 401 and from_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": "/login"})
    if status == 401 and request.method == "GET":
        return Redirect(f"/login?next={quote(request.url.path)}")
    if extra == FIRST_PASSWORD:  # a page while the one-time password is not yet replaced
        if from_htmx(request):  # e.g. the inbox badge of the account page
            return Response("", status_code=403)
        return Redirect("/account?first=1")
    if from_htmx(request):
        return Response(
            f'<div class="error">{_escape(message)}</div>',
            status_code=status,
            media_type="text/html",
        )
    return Template(
        "error.html", context={"status": status, "message": message}, status_code=status
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reef_error(request: Request, exc: ReefError) -> Response:
    extra = FIRST_PASSWORD if isinstance(exc, PasswordChangeRequired) else None
    return render_error(request, exc.status, exc.message, extra)


def http_error(request: Request, exc: HTTPException) -> Response:
    extra = exc.extra if isinstance(exc, ValidationException) else None
    return render_error(request, exc.status_code, _naming_fields(exc.detail, extra), extra)


def _naming_fields(detail: str, extra: object) -> str:
    """A validation failure's message with what was wrong in it ("…: name: Expected `str`,
    got `int`"), not only in `extra`: clients and people read `detail` first."""
    if not isinstance(extra, list):
        return detail
    said = [
        f"{e['key']}: {e['message']}" if e.get("key") else str(e.get("message"))
        for e in extra
        if isinstance(e, dict) and e.get("message")
    ]
    return f"{detail}: {'; '.join(said)}" if said else detail


def server_error(request: Request, exc: Exception) -> Response:
    """A 500 says only that it happened and its request id; the details go to the log."""
    request_id = uuid.uuid4().hex[:16]
    log.error(
        "request %s: unhandled error on %s %s",
        request_id,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    message = f"internal error (request id {request_id}; the server log has the details)"
    return render_error(request, 500, message, {"request_id": request_id})


HANDLERS: ExceptionHandlersMap = {
    NotAuthenticated: reef_error,
    ReefError: reef_error,
    HTTPException: http_error,
    Exception: server_error,
}
