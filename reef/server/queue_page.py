"""The queue: steps waiting and running across the projects a user can see, with the GPUs
each running step holds."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from reef.hub import Hub
from reef.server.routes import HubDep, get
from reef.store.people import Principal


def queue_context(hub: Hub, who: Principal) -> dict[str, Any]:
    rows = hub.db.query(
        "SELECT s.id, s.name, s.status, s.module, s.gpus, s.gpu_ids, s.started_at, s.run_id, "
        "s.memory_mb, s.attempt, s.retries, p.name AS project, r.created_by, "
        "coalesce(CAST(json_extract(r.spec, '$.priority') AS INTEGER), 0) AS priority, "
        "w.worker FROM steps s JOIN runs r ON r.id = s.run_id "
        "LEFT JOIN step_workers w ON w.step_id = s.id AND w.active "
        "JOIN projects p ON p.id = r.project_id WHERE s.status IN ('queued', 'running') "
        "ORDER BY s.status DESC, priority DESC, s.id"
    )
    visible = [r for r in rows if hub.projects.role_of(r["project"], who)]
    return {
        "running": [r for r in visible if r["status"] == "running"],
        "waiting": [r for r in visible if r["status"] == "queued"],
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
