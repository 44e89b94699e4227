"""The worker API: what a `reef worker` on another box calls to run a step it took from the
shared queue (see reef/runtime/remote.py). It authenticates with an API token of a user who
is a developer of the step's project; a run's step token is refused."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request
from litestar.response import Stream

import reef
from reef.errors import PermissionDenied
from reef.runtime import usage
from reef.runtime.transfer import MEDIA_TYPES
from reef.server.bodies import BYTES, documented
from reef.server.routes import FromPath, HubDep, JSONBody, Offset, get, post, put
from reef.server.run_reports import MetricPost, metric_columns
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


class Claim(msgspec.Struct, forbid_unknown_fields=True):
    """The worker's name and what it has (Python, GPUs, sandbox): the step's record keeps it."""

    worker: Annotated[str, msgspec.Meta(examples=["gpu-box-2"])]
    facts: Annotated[
        dict[str, Any], msgspec.Meta(examples=[{"python": "3.11.7", "gpus": ["H100"]}])
    ] = {}


class StepEnd(msgspec.Struct, forbid_unknown_fields=True):
    """A step's end: `error` null (it succeeded) or why it failed; `final` true when a retry
    would fail the same way; `usage` its wall and CPU seconds (older workers send none)."""

    error: str | None
    exit_code: int | None = None
    final: bool = False
    usage: dict[str, float] | None = None  # {"wall_s": S, "cpu_s": S}: its device time


@post(f"{BASE}/claim", access="user", status_code=200)
def claim(request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[Claim]) -> dict:
    """Take a queued step: {"run": false} when it is not to run, else all a worker needs."""
    who = worker_principal(request)
    job = hub.remote.claim(step_id, who, data.worker[:200], data.facts)
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


@put(
    f"{BASE}/outputs/{{name:str}}",
    access="user",
    request_max_body_size=None,
    operation_class=documented(BYTES, "a Parquet file, or a tar of a model dir"),
)
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


@post(f"{BASE}/log", access="user", status_code=200, operation_class=documented(BYTES))
async def log_append(
    request: Request, hub: HubDep, step_id: FromPath[int], offset: Offset = 0
) -> dict:
    who = worker_principal(request)
    data = await request.body()
    return await anyio.to_thread.run_sync(hub.remote.append_log, step_id, who, offset, data)


@post(f"{BASE}/samples", access="user", status_code=200)
def samples(
    request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[MetricPost]
) -> dict:
    """System samples (GPU, memory) as metric points."""
    return hub.remote.samples(step_id, worker_principal(request), metric_columns(data))


@post(f"{BASE}/finish", access="user", status_code=200)
def finish(request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[StepEnd]) -> dict:
    """The step's end (see StepEnd)."""
    who = worker_principal(request)
    used = usage.from_worker(data.usage)
    status = hub.remote.finish(step_id, who, data.error, data.exit_code, data.final, used)
    return {"status": status}


ROUTES = [hello, claim, release, input_download, output_upload, log_append, samples, finish]
