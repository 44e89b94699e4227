"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) over reef's
content-addressed store: uploads stream to disk chunk by chunk, downloads stream from it, and
each file is recorded as an artifact of its run under its MLflow path."""

from __future__ import annotations

import posixpath
import re
from typing import Any

import anyio
import litestar
from litestar import Request
from litestar.response import File

from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.server.mlflow_api import PREFIXES, mlget
from reef.server.mlflow_models import model_for
from reef.server.mlflow_wire import (
    HANDLERS,
    SCRIPT_STEP,
    check_role,
    field,
    run_for,
    run_id_of,
    run_writable,
)
from reef.server.routes import FromPath, HubDep
from reef.store.artifacts import Incoming
from reef.store.people import Principal

ARTIFACTS = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")
BUFFER = 1 << 20  # bytes of an upload held before they go to disk
_PATH = re.compile(r"^/?(\d+)/(\d+|models/m-[0-9a-f]{32})/artifacts(?:/(.*))?$")


def _place(hub: Hub, who: Principal, path: str, write: bool = False) -> tuple[int, str]:
    """(run id, name in the run's artifacts) of `<experiment>/<run>/artifacts/<path>` or
    `<experiment>/models/<model id>/artifacts/<path>` (a logged model's files are kept as its
    run's artifacts under `models/<model id>/`), if `who` may read (or write) it."""
    m = _PATH.match(path or "")
    if not m:
        raise NotFound(
            f"no artifact location {path!r}: expected EXPERIMENT/RUN/artifacts/PATH or "
            "EXPERIMENT/models/MODEL_ID/artifacts/PATH"
        )
    rel = posixpath.normpath(m[3] or ".")
    if rel.startswith("..") or rel.startswith("/"):
        raise InvalidInput(f"artifact path {m[3]!r} leaves the artifact root")
    rel = "" if rel == "." else rel
    owner = m[2]
    if owner.isdigit():
        if write:
            run_writable(hub, who, int(owner))  # no database read once the run is known
        else:
            run_for(hub, who, int(owner))
        return int(owner), rel
    model_id = owner.split("/", 1)[1]
    files = posixpath.join("models", model_id, rel).rstrip("/")
    if write:  # as model_for checks it, from the model's owner kept a while
        project, run_id = hub.logged_models.owner(model_id)
        check_role(hub, who, project, "developer", f"Logged model with ID '{model_id}' not found.")
        return run_id, files
    model = model_for(hub, who, model_id, "reporter")
    return int(model["run_id"] or 0), files


@litestar.put(
    [p + "/{path:path}" for p in ARTIFACTS],
    opt={"access": "user"},
    exception_handlers=HANDLERS,
    include_in_schema=False,
    request_max_body_size=None,
)
async def upload(request: Request, hub: HubDep, path: FromPath[str]) -> dict:
    """A small file (most MLflow artifacts) is read, checked, written and recorded in one hop
    to a worker thread; a larger one goes to disk in pieces of up to BUFFER bytes, so it
    streams with bounded memory and a hop per piece, not per chunk."""
    length = request.headers.get("content-length") or ""
    if length.isdigit() and int(length) <= BUFFER:
        body = await request.body()
        await anyio.to_thread.run_sync(_store_whole, hub, request.user, path, body)
        return {}
    run_id, rel = await anyio.to_thread.run_sync(_writable, hub, request.user, path)
    incoming = hub.artifacts.incoming()  # a temp file in the store: no thread needed
    try:
        pending, size = [], 0
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= BUFFER:
                await anyio.to_thread.run_sync(incoming.write, b"".join(pending))
                pending, size = [], 0
    except BaseException:
        incoming.abort()
        raise
    await anyio.to_thread.run_sync(_store, hub, incoming, b"".join(pending), run_id, rel)
    return {}


def _writable(hub: Hub, who: Principal, path: str) -> tuple[int, str]:
    run_id, rel = _place(hub, who, path, True)
    if not rel or (rel.count("/") == 1 and rel.startswith("models/")):
        raise InvalidInput("give the artifact's path after /artifacts/")
    return run_id, rel


def _store_whole(hub: Hub, who: Principal, path: str, body: bytes) -> None:
    run_id, rel = _writable(hub, who, path)
    _store(hub, hub.artifacts.incoming(), body, run_id, rel)


def _store(hub: Hub, incoming: Incoming, rest: bytes, run_id: int, rel: str) -> None:
    """Write the last piece, commit the file and record it as an artifact of its run."""
    try:
        incoming.write(rest)
    except BaseException:
        incoming.abort()
        raise
    digest, size = incoming.commit()
    hub.runs.add_artifact(run_id, SCRIPT_STEP, rel, digest, size)


@litestar.get(
    [p + "/{path:path}" for p in ARTIFACTS],
    opt={"access": "user"},
    exception_handlers=HANDLERS,
    include_in_schema=False,
)
async def download(request: Request, hub: HubDep, path: FromPath[str]) -> File:
    """Async, as is the listing: Litestar 2.25 wraps a sync handler twice on a path that
    three handlers share (GET, PUT and the listing's GET here)."""
    found = await anyio.to_thread.run_sync(_find, hub, request.user, path)
    return File(
        path=hub.artifacts.path(found["digest"]),
        filename=posixpath.basename(found["rel"]),
        media_type="application/octet-stream",
        content_disposition_type="attachment",
    )


def _find(hub: Hub, who: Principal, path: str) -> dict[str, Any]:
    run_id, rel = _place(hub, who, path)
    return {**hub.mlflow.artifact(run_id, rel), "rel": rel}


def _listing(hub: Hub, who: Principal, path: str) -> tuple[str, list[dict[str, Any]]]:
    run_id, rel = _place(hub, who, path)
    return rel, hub.mlflow.artifact_listing(run_id, rel)


@litestar.get(
    list(ARTIFACTS),
    opt={"access": "user"},
    exception_handlers=HANDLERS,
    include_in_schema=False,
)
async def list_artifacts(request: Request, hub: HubDep) -> dict:
    """`?path=EXPERIMENT/RUN/artifacts/SUB`: files relative to the path given."""
    given = request.query_params.get("path") or ""
    rel, files = await anyio.to_thread.run_sync(_listing, hub, request.user, given)
    cut = len(rel) + 1 if rel else 0
    return {"files": [{**f, "path": f["path"][cut:]} for f in files]}


@mlget("/artifacts/list")
def list_run_artifacts(request: Request, hub: HubDep) -> dict[str, Any]:
    """The tracking API's listing (`run_id`, `path`), paths relative to the run's root."""
    q = dict(request.query_params.items())
    run = run_for(hub, request.user, run_id_of(q))[0]
    rel = (field(q, "path", required=False) or "").strip("/")
    return {
        "root_uri": f"mlflow-artifacts:/{run.project_id}/{run.id}/artifacts",
        "files": hub.mlflow.artifact_listing(run.id, rel),
    }


ROUTES = [upload, download, list_artifacts, list_run_artifacts]
__all__ = ["PREFIXES", "ROUTES"]
