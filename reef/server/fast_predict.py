"""The predict fast path: `POST /api/projects/{p}/models/{m}/predict` answered in plain ASGI,
ahead of Litestar's middleware stack, when everything it needs is already in memory.

That is: a bearer token and the caller's project role found in their caches, a body that
decodes, and the model's serving plan built. Then the request costs a cache lookup, a
msgspec decode, the prediction and a msgspec encode. Anything else (no token, a cache miss,
a cold model, a body of unknown or excessive length, a body that is not a predict request)
goes on, body included, to the regular Litestar route, which authenticates, loads and
answers as before. Typed errors of validation answer here, with the same JSON.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, cast

import msgspec

from reef.errors import ReefError
from reef.server.model_requests import PredictRequest
from reef.server.security_headers import HEADERS
from reef.store.projects import rank
from reef.store.ttl_cache import MISSING

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import (
        ASGIApp,
        HTTPResponseBodyEvent,
        HTTPResponseStartEvent,
        HTTPScope,
        Receive,
        ReceiveMessage,
        Scope,
        Send,
    )

    from reef.hub import Hub
    from reef.store.people import Principal

log = logging.getLogger("reef.server")
PATH = re.compile(r"^/api/projects/(?P<project>[^/]+)/models/(?P<model>[^/]+)/predict$")
JSON_HEADERS = [(b"content-type", b"application/json"), *HEADERS.items()]
_decode = msgspec.json.Decoder(PredictRequest)
_encode = msgspec.json.Encoder()


def mount(app: Litestar, max_body: int) -> Litestar:
    """Put the fast path in front of `app`'s ASGI handler."""
    app.asgi_handler = FastPredict(app, app.asgi_handler, max_body)
    return app


class FastPredict:
    def __init__(self, app: Litestar, inner: ASGIApp, max_body: int) -> None:
        self.app, self.inner, self.max_body = app, inner, max_body
        self.answered = 0  # requests the fast path answered itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or cast("HTTPScope", scope)["method"] != "POST":
            await self.inner(scope, receive, send)
            return
        match = PATH.match(scope["path"])
        if match is None:
            await self.inner(scope, receive, send)
            return
        hub: Hub = self.app.state.hub
        if _cached_caller(hub, scope, match["project"]) is None or _too_long(scope, self.max_body):
            await self.inner(scope, receive, send)
            return
        body = await _read_body(receive)
        data = _json(body)
        answer = _predict(hub, match["project"], match["model"], data) if data else None
        if answer is None:
            await self.inner(scope, _replay(body, receive), send)
            return
        status, payload = answer
        self.answered += 1
        body = _encode.encode(payload)
        headers: list[tuple[bytes, bytes]] = [
            *JSON_HEADERS,
            (b"content-length", str(len(body)).encode()),
        ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        }
        await send(start)
        end: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": body,
            "more_body": False,
        }
        await send(end)


def _cached_caller(hub: Hub, scope: Scope, project: str) -> Principal | None:
    """The caller when its bearer token and its role (at least reporter) are both cached."""
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    if header[:7].lower() != b"bearer ":
        return None
    who = hub.people.cached_token(header[7:].decode("latin-1").strip(), ("api",))
    if who is MISSING or who is None:
        return None
    role = hub.projects.cached_role(project, who)
    return who if role is not MISSING and rank(role) >= rank("reporter") else None


def _too_long(scope: Scope, limit: int) -> bool:
    """Whether the body is of unknown length (chunked) or over `limit`: the regular route,
    which enforces the limit while it reads, answers those."""
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    return length is None or not length.isdigit() or int(length) > limit


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (its length is known and within the limit)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the regular route sees the disconnect too
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _json(body: bytes) -> PredictRequest | None:
    """The decoded body when it is a valid predict request; None otherwise (the regular route
    then answers, with a 400 that names what was wrong)."""
    try:
        return _decode.decode(body)
    except msgspec.DecodeError:  # ValidationError too
        return None


def _predict(hub: Hub, project: str, model: str, data: PredictRequest) -> tuple[int, Any] | None:
    """(status, JSON) when the model's plan is warm; None sends the request on."""
    alias, key = data.version, data.key
    alias = None if alias is None else str(alias)
    service = hub.model_service
    if not service.is_warm(project, model, alias):
        return None
    try:
        result = service.predict(project, model, data.rows, alias=alias, key=key)
    except ReefError as e:  # the same JSON as the regular route's error handler
        return e.status, {"detail": e.message, "status": e.status}
    except Exception as e:
        log.exception("unhandled error on predict %s/%s", project, model)
        return 500, {"detail": f"internal error: {type(e).__name__}: {e}", "status": 500}
    return 200, result


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then defers to the real one."""
    sent = False

    async def replay() -> ReceiveMessage:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
