"""Live step logs over server-sent events: each step's new log text is pushed as it is
written, until the run finishes. The run page appends it (htmx SSE extension)."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import anyio
from litestar import Request
from litestar.response import ServerSentEvent, ServerSentEventMessage

from reef.hub import Hub
from reef.server.routes import FromPath, HubDep, get

POLL_S = 0.3
MAX_CHUNK = 64_000


def offsets_from(request: Request, steps: list[str]) -> dict[str, int]:
    """Where the page's logs end already (?from.STEP=BYTES), so nothing is sent twice."""
    out = {}
    for name in steps:
        try:
            out[name] = max(0, int(request.query_params.get(f"from.{name}", 0)))
        except ValueError:
            out[name] = 0
    return out


def new_text(hub: Hub, run_id: int, step: str, offset: int) -> tuple[str, int]:
    path = hub.orchestrator.log_path(run_id, step)
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(MAX_CHUNK)
    except FileNotFoundError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


async def log_events(hub: Hub, run_id: int, offsets: dict[str, int]) -> AsyncIterator:
    """One event per chunk of new log text, named `log-STEP`; a `done` event at the end."""
    finished = False
    while not finished:
        run = await anyio.to_thread.run_sync(hub.runs.run, run_id)
        finished = run.finished  # read the logs once more after the run ended
        for step, offset in offsets.items():
            text, offsets[step] = await anyio.to_thread.run_sync(
                new_text, hub, run_id, step, offset
            )
            if text:
                yield ServerSentEventMessage(data=html.escape(text), event=f"log-{step}")
        if not finished:
            await anyio.sleep(POLL_S)
    yield ServerSentEventMessage(data=run.status, event="done")


@get("/projects/{project:str}/runs/{run_id:int}/logs/stream", access="reporter")
def log_stream(
    request: Request, hub: HubDep, project: FromPath[str], run_id: FromPath[int]
) -> ServerSentEvent:
    hub.runs.run_in(project, run_id)
    steps = [s.name for s in hub.runs.steps(run_id)]
    return ServerSentEvent(log_events(hub, run_id, offsets_from(request, steps)))


ROUTES = [log_stream]
