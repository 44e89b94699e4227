"""The worker API: what a `reef worker` on another box calls to run a step it took from the
shared queue (see reef/runtime/remote.py). It authenticates with an API token of a user who
is a developer of the step's project; a run's step token is refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Request
from litestar.response import Stream

import reef
from reef.errors import PermissionDenied
from reef.runtime import usage
from reef.runtime.transfer import MEDIA_TYPES
from reef.server.bodies import BYTES, documented
from reef.server.file_answers import file_answer
from reef.server.routes import FromPath, HubDep, JSONBody, Offset, get, post, put
from reef.server.run_reports import MetricPost, metric_columns
from reef.store.people import Principal

BASE = "/api/worker/steps/{step_id:int}"
StepStatus = Annotated[
    str, msgspec.Meta(description="the step's status now", examples=["succeeded", "queued"])
]
Cancel = Annotated[
    bool, msgspec.Meta(description="the step was cancelled (or taken back): stop it now")
]


class Hello(msgspec.Struct):
    """Who the token belongs to, and the server's reef version."""

    user: str
    version: Annotated[str, msgspec.Meta(examples=["0.1.0"])]


class NotToRun(msgspec.Struct):
    """The step is not to run (no longer queued, or another worker took it)."""

    run: Literal[False]


class ModuleRef(msgspec.Struct):
    """The module commit to run; the worker fetches it over git (GET /git/PROJECT/NAME)."""

    project: str
    name: str
    commit: str


class StepDescription(msgspec.Struct):
    """The step file the module reads (the worker adds its local inputs and outputs)."""

    project: str
    run_id: int
    step: str
    module: Annotated[str, msgspec.Meta(description="PROJECT/MODULE")]
    commit: str
    params: dict[str, Any]
    seed: int


class StepJob(msgspec.Struct):
    """A step the worker took: all it needs to run it."""

    run: Literal[True]
    step_id: int
    run_id: int
    step: str
    module: ModuleRef
    entrypoint: Annotated[str, msgspec.Meta(examples=["main.py"])]
    requirements: Annotated[list[str], msgspec.Meta(description="pip requirements")]
    description: StepDescription
    inputs: Annotated[
        dict[str, str],
        msgspec.Meta(description="input name -> its download format: parquet, arrow or tar"),
    ]
    outputs: Annotated[
        dict[str, str], msgspec.Meta(description="output name -> kind (dataset or model)")
    ]
    timeout_s: float
    memory_mb: int | None
    gpus: int
    env: Annotated[dict[str, str], msgspec.Meta(description="the step's environment")]


class Released(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(examples=["queued"])]


class OutputStored(msgspec.Struct):
    stored: Annotated[str, msgspec.Meta(description="the output's name")]


class LogAppended(msgspec.Struct):
    """Where the stored log ends now (the offset of the next chunk)."""

    size: int
    cancel: Cancel


class CancelAsked(msgspec.Struct):
    cancel: Cancel


class Finished(msgspec.Struct):
    status: StepStatus


def worker_principal(request: Request) -> Principal:
    who: Principal = request.user
    if who.via != "api":
        raise PermissionDenied("a worker needs an API token (POST /api/tokens)")
    return who


@get("/api/worker/hello", access="user")
def hello(request: Request) -> Hello:
    """Who the worker's token belongs to (a worker checks its token with this at start)."""
    return Hello(worker_principal(request).name, reef.__version__)


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
def claim(
    request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[Claim]
) -> NotToRun | StepJob:
    """Take a queued step: {"run": false} when it is not to run, else all a worker needs."""
    who = worker_principal(request)
    job = hub.remote.claim(step_id, who, data.worker[:200], data.facts)
    if job is None:
        return NotToRun(False)
    parts = {
        "module": ModuleRef(**job["module"]),
        "description": StepDescription(**job["description"]),
    }
    return StepJob(run=True, **{**job, **parts})


@post(f"{BASE}/release", access="user", status_code=200)
def release(request: Request, hub: HubDep, step_id: FromPath[int]) -> Released:
    """Give a claimed step back to the queue (the worker cannot run it)."""
    hub.remote.release(step_id, worker_principal(request))
    return Released("queued")


@get(
    f"{BASE}/inputs/{{name:str}}",
    access="user",
    responses=file_answer(
        "application/octet-stream",
        "the input as Parquet, an Arrow IPC stream or a tar of a model dir (x-reef-format)",
    ),
)
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
) -> OutputStored:
    """The output streamed to the step's outputs dir (a Parquet file, or a tar of a model
    dir); it replaces what was there only once complete."""
    who = worker_principal(request)
    fmt, path = await anyio.to_thread.run_sync(hub.remote.output_target, step_id, who, name)
    send, receive = anyio.create_memory_object_stream[bytes](8)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_feed, request, send)
        await anyio.to_thread.run_sync(hub.remote.store_output, fmt, _blocking(receive), path)
    return OutputStored(name)


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
) -> LogAppended:
    """A chunk of the step's log, written at byte `offset`."""
    who = worker_principal(request)
    data = await request.body()
    done = await anyio.to_thread.run_sync(hub.remote.append_log, step_id, who, offset, data)
    return LogAppended(**done)


@post(f"{BASE}/samples", access="user", status_code=200)
def samples(
    request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[MetricPost]
) -> CancelAsked:
    """System samples (GPU, memory) as metric points."""
    return CancelAsked(
        **hub.remote.samples(step_id, worker_principal(request), metric_columns(data))
    )


@post(f"{BASE}/finish", access="user", status_code=200)
def finish(
    request: Request, hub: HubDep, step_id: FromPath[int], data: JSONBody[StepEnd]
) -> Finished:
    """The step's end (see StepEnd)."""
    who = worker_principal(request)
    used = usage.from_worker(data.usage)
    status = hub.remote.finish(step_id, who, data.error, data.exit_code, data.final, used)
    return Finished(status)


ROUTES = [hello, claim, release, input_download, output_upload, log_append, samples, finish]
