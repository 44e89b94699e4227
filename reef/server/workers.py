"""The worker API: what a `reef worker` on another box calls to run a step it took from the
shared queue (see reef/runtime/remote.py). It authenticates with an API token of a user who
is a developer of the step's project; a run's step token is refused."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request
from litestar.response import Stream

import reef
from reef.errors import InvalidInput, PermissionDenied
from reef.runtime import usage
from reef.runtime.transfer import MEDIA_TYPES
from reef.server.routes import FromPath, HubDep, JSONBody, Offset, get, post, put
from reef.server.runs import metric_points
from reef.store.people import Principal

BASE = "/api/worker/steps/{step_id:int}"


def worker_principal(request: Request) -> Principal:
    who: Principal = request.user
    if who.via != "api":
        raise PermissionDenied("a worker needs an API token (POST /api/tokens)")
    return who


@get("/api/worker/hello", access="user")
def hello(request: Request) -> dict:
    """Who the worker's token belongs to (a worker checks its token with this at start)."""
    return {"user": worker_principal(request).name, "version": reef.__version__}


@post(f"{BASE}/claim", access="user", status_code=200)
def claim(request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[Any]) -> dict:
    """Take a queued step: {"run": false} when it is not to run, else all a worker needs."""
    who = worker_principal(request)
    if not isinstance(data, dict) or not isinstance(data.get("worker"), str):
        raise InvalidInput("send {'worker': NAME, 'facts': {...}}")
    facts = data.get("facts") if isinstance(data.get("facts"), dict) else {}
    job = hub.remote.claim(step_id, who, data["worker"][:200], facts)
    return {"run": False} if job is None else {"run": True, **job}


@post(f"{BASE}/release", access="user", status_code=200)
def release(request: Request, hub: HubDep, step_id: FromPath[int]) -> dict:
    hub.remote.release(step_id, worker_principal(request))
    return {"status": "queued"}


@get(f"{BASE}/inputs/{{name:str}}", access="user")
def input_download(
    request: Request, hub: HubDep, step_id: FromPath[int], name: FromPath[str]
) -> Stream:
    fmt, chunks = hub.remote.input_stream(step_id, worker_principal(request), name)
    return Stream(
        chunks,
        media_type=MEDIA_TYPES[fmt],
        headers={"content-type": MEDIA_TYPES[fmt], "x-reef-format": fmt},
    )


@put(f"{BASE}/outputs/{{name:str}}", access="user", request_max_body_size=None)
async def output_upload(
    request: Request, hub: HubDep, step_id: FromPath[int], name: FromPath[str]
) -> dict:
    """The output streamed to the step's outputs dir (a Parquet file, or a tar of a model
    dir); it replaces what was there only once complete."""
    who = worker_principal(request)
    fmt, path = await anyio.to_thread.run_sync(hub.remote.output_target, step_id, who, name)
    send, receive = anyio.create_memory_object_stream[bytes](8)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_feed, request, send)
        await anyio.to_thread.run_sync(hub.remote.store_output, fmt, _blocking(receive), path)
    return {"stored": name}


async def _feed(request: Request, send: Any) -> None:
    async with send:
        async for chunk in request.stream():
            if chunk:
                await send.send(chunk)


def _blocking(receive: Any) -> Any:
    """The received chunks, read from a worker thread."""
    while True:
        try:
            yield anyio.from_thread.run(receive.receive)
        except anyio.EndOfStream:
            return


@post(f"{BASE}/log", access="user", status_code=200)
async def log_append(
    request: Request, hub: HubDep, step_id: FromPath[int], offset: Offset = 0
) -> dict:
    who = worker_principal(request)
    data = await request.body()
    return await anyio.to_thread.run_sync(hub.remote.append_log, step_id, who, offset, data)


@post(f"{BASE}/samples", access="user", status_code=200)
def samples(request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[Any]) -> dict:
    _, columns = metric_points(data)
    return hub.remote.samples(step_id, worker_principal(request), columns)


@post(f"{BASE}/finish", access="user", status_code=200)
def finish(request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[Any]) -> dict:
    """The step's end: {"error": null or why, "exit_code": N, "final": true when a retry
    would fail the same way, "usage": {"wall_s": S, "cpu_s": S} (its device time)}."""
    if not isinstance(data, dict) or "error" not in data:
        raise InvalidInput("'error' is missing: send {'error': null or a message, 'exit_code': N}")
    if not isinstance(data["error"], str | None):
        raise InvalidInput("'error' must be null or a message (text)")
    code = data.get("exit_code")
    status = hub.remote.finish(
        step_id,
        worker_principal(request),
        data["error"],
        code if isinstance(code, int) else None,
        bool(data.get("final")),
        usage.from_worker(data.get("usage")),
    )
    return {"status": status}


ROUTES = [hello, claim, release, input_download, output_upload, log_append, samples, finish]
