"""The queue: steps waiting and running across the projects a user can see, with the GPUs
each running step holds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from reef.hub import Hub
from reef.server.routes import HubDep, get
from reef.store.people import Principal
from reef.store.status import Status


class QueuedStep(msgspec.Struct):
    """A step waiting or running, with its run, project and who started the run."""

    id: int
    name: str
    status: Annotated[str, msgspec.Meta(examples=["queued", "running"])]
    module: Annotated[str, msgspec.Meta(description="PROJECT/MODULE")]
    gpus: Annotated[int, msgspec.Meta(description="GPUs it needs")]
    gpu_ids: Annotated[str | None, msgspec.Meta(description="the GPUs it holds, when running")]
    started_at: datetime | None
    run_id: int
    memory_mb: int | None
    attempt: int
    retries: int
    project: str
    created_by: str
    priority: Annotated[int, msgspec.Meta(description="higher runs first")]
    worker: Annotated[str | None, msgspec.Meta(description="the remote worker running it")]


class Queue(msgspec.Struct):
    """Steps running and waiting in the projects you can read, and this server's capacity."""

    running: list[QueuedStep]
    waiting: list[QueuedStep]
    gpus: Annotated[list[str], msgspec.Meta(description="this server's GPU devices")]
    held: Annotated[dict[str, int], msgspec.Meta(description="busy GPU -> the step holding it")]
    workers: Annotated[
        int, msgspec.Meta(description="steps the server runs at once (0: only remote workers)")
    ]
    cpu_steps: Annotated[
        int, msgspec.Meta(description="CPU-only steps that may run at once (0: up to workers)")
    ]


def queue_context(hub: Hub, who: Principal) -> dict[str, Any]:
    visible = hub.run_views.queue(who)
    return {
        "running": [r for r in visible if r["status"] == Status.RUNNING],
        "waiting": [r for r in visible if r["status"] == Status.QUEUED],
        "gpus": hub.gpu_pool.devices,
        "held": hub.gpu_pool.holders(),
        "workers": hub.settings.workers,
        "cpu_steps": hub.settings.cpu_steps,
    }


@get("/api/queue", access="user")
def queue_api(request: Request, hub: HubDep) -> Queue:
    ctx = queue_context(hub, request.user)
    steps = {k: [QueuedStep(**r) for r in ctx[k]] for k in ("running", "waiting")}
    return Queue(**{**ctx, **steps})


@get("/queue", access="user")
def queue_page(request: HTMXRequest, hub: HubDep) -> Template:
    """The queue; htmx's poll gets the table fragment only."""
    template = "_queue.html" if request.htmx else "queue.html"
    return Template(template, context=queue_context(hub, request.user))


ROUTES = [queue_api, queue_page]
