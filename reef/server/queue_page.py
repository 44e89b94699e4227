"""The queue: steps waiting and running across the projects a user can see, with the GPUs
each running step holds."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from reef.hub import Hub
from reef.server.routes import HubDep, get
from reef.store.people import Principal
from reef.store.status import Status


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
def queue_api(request: Request, hub: HubDep) -> dict:
    return queue_context(hub, request.user)


@get("/queue", access="user")
def queue_page(request: Request, hub: HubDep) -> Template:
    """The queue; htmx's poll gets the table fragment only."""
    template = "_queue.html" if request.htmx else "queue.html"
    return Template(template, context=queue_context(hub, request.user))


ROUTES = [queue_api, queue_page]
