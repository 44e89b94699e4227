"""The no-code pipeline builder: add steps from the catalog, fill their forms, wire outputs
to inputs, see the DAG and what is wrong, save. The draft spec travels with the form; each
change re-renders the builder (htmx), validated by the same planner that runs pipelines."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from reef.errors import InvalidInput, ReefError
from reef.hub import Hub
from reef.manifest import Manifest
from reef.pipeline import STEP_NAME, upstream
from reef.server import dag
from reef.server.modules import catalog
from reef.server.pipelines import save_pipeline
from reef.server.routes import Form, FromPath, FromQuery, HubDep, get, post
from reef.store.people import Principal
from reef.store.projects import LIBRARY


def draft_from(form: dict[str, str]) -> dict[str, Any]:
    """The draft in the form: its JSON, with the step fields the user just changed applied."""
    try:
        draft = json.loads(form.get("draft") or '{"steps": []}')
    except json.JSONDecodeError:
        raise InvalidInput("the builder's draft is not valid JSON; reload the page") from None
    for step in draft.get("steps", []):
        prefix = f"{step['name']}."
        for key, value in form.items():
            kind, _, rest = key.partition(":")
            if rest.startswith(prefix) and kind in ("param", "input"):
                target = step.setdefault("params" if kind == "param" else "inputs", {})
                target[rest.removeprefix(prefix)] = value
    return draft


def add_step(hub: Hub, who: Principal, project: str, draft: dict, module: str) -> None:
    """Append a step running `module`, its inputs wired to the likeliest sources."""
    module_project, _, name = module.partition("/")
    hub.projects.require(module_project, who, "reporter")
    manifest = hub.modules.manifest(module_project, name)
    taken = {s["name"] for s in draft["steps"]}
    step_name = unique(name.replace(".", "-"), taken)
    sources = options(hub, project, draft, manifest_of=lambda s: _manifest(hub, s))
    inputs = {key: guess(key, sources.get(kind, [])) for key, kind in manifest.inputs.items()}
    draft["steps"].append(
        {
            "name": step_name,
            "module": module,
            "inputs": {k: v for k, v in inputs.items() if v},
            "params": {},
        }
    )


def qualified(hub: Hub, project: str, module: str) -> str:
    """PROJECT/MODULE for a module written without a project (the planner's rule)."""
    if "/" in module:
        return module
    own = hub.modules.exists(project, module.split("@")[0])
    return f"{project if own else LIBRARY}/{module}"


def _manifest(hub: Hub, step: dict) -> Manifest:
    project, _, name = step["module"].partition("/")
    return hub.modules.manifest(project, name.split("@")[0])


def unique(base: str, taken: set[str]) -> str:
    name, n = base[:60], 2
    while name in taken or not STEP_NAME.match(name):
        name = f"{base[:57]}-{n}"
        n += 1
    return name


def options(
    hub: Hub, project: str, draft: dict, manifest_of: Any, before: str | None = None
) -> dict[str, list[str]]:
    """What an input can read, by kind: the project's datasets, and earlier steps' outputs."""
    datasets = hub.catalog.datasets(hub.projects.get(project).id)
    found: dict[str, list[str]] = {"dataset": [f"dataset:{d['name']}" for d in datasets]}
    for step in draft["steps"]:
        if step["name"] == before:
            break
        for out, kind in manifest_of(step).outputs.items():
            found.setdefault(kind, []).append(f"{step['name']}.{out}")
    return found


def guess(input_name: str, choices: list[str]) -> str | None:
    """An output with the input's name, else the most recent output, else the first dataset."""
    outputs = [c for c in choices if not c.startswith("dataset:")]
    named = [c for c in outputs if c.rsplit(".", 1)[1] == input_name]
    return (named or outputs[-1:] or choices[:1] or [None])[-1]


def context(
    hub: Hub, who: Principal, project: str, draft: dict, name: str = "", error: str | None = None
) -> dict[str, Any]:
    steps, problem = [], error
    for step in draft["steps"]:
        manifest = _manifest(hub, step)
        sources = options(hub, project, draft, lambda s: _manifest(hub, s), before=step["name"])
        columns = {
            key: _columns(hub, project, step["inputs"].get(key, "")) for key in manifest.inputs
        }
        steps.append({"spec": step, "manifest": manifest, "sources": sources, "columns": columns})
    if draft["steps"] and problem is None:
        problem = validate(hub, who, project, draft)
    drawing = dag.svg(
        [
            dag.Node(s["name"], s["module"].split("/", 1)[1], tuple(upstream(s.get("inputs", {}))))
            for s in draft["steps"]
        ]
    )
    return {
        "project": hub.projects.get(project),
        "draft": draft,
        "steps": steps,
        "problem": problem,
        "dag": drawing,
        "name": name,
        "modules": catalog(hub, project),
        "draft_json": json.dumps(draft),
    }


def validate(hub: Hub, who: Principal, project: str, draft: dict) -> str | None:
    try:
        hub.orchestrator.planner.plan(project, draft, who)
    except ReefError as e:
        return e.message
    return None


def _columns(hub: Hub, project: str, ref: str) -> list[str]:
    if not ref.startswith("dataset:"):
        return []
    try:
        return [c for c, _ in hub.datasets.info(project, ref.removeprefix("dataset:")).columns]
    except ReefError:
        return []


@get("/projects/{project:str}/builder", access="developer")
def builder_page(
    request: Request, hub: HubDep, project: FromPath[str], pipeline: FromQuery[str | None] = None
) -> Template:
    """A blank builder, or one holding a saved pipeline to change."""
    draft: dict = {"steps": []}
    if pipeline:
        saved = hub.runs.pipeline(hub.projects.get(project).id, pipeline)["spec"]["steps"]
        draft = {"steps": [{**s, "module": qualified(hub, project, s["module"])} for s in saved]}
    ctx = context(hub, request.user, project, draft, pipeline or "")
    return Template("builder.html", context=ctx)


@post("/projects/{project:str}/builder", access="developer", status_code=200)
def builder_action(request: Request, hub: HubDep, project: FromPath[str], data: Form) -> Response:
    """One change: add a module, remove a step, update fields, or save."""
    draft, action, error = draft_from(data), data.get("action", "update"), None
    try:
        if action == "add":
            add_step(hub, request.user, project, draft, data.get("module", ""))
        elif action.startswith("remove:"):
            draft["steps"] = [s for s in draft["steps"] if s["name"] != action[7:]]
        elif action == "save":
            saved = save_pipeline(hub, request.user, project, {**draft, "name": data.get("name")})
            return Response(
                "", headers={"HX-Redirect": f"/projects/{project}/pipelines/{saved['name']}"}
            )
    except ReefError as e:
        error = e.message
    ctx = context(hub, request.user, project, draft, data.get("name", ""), error)
    return Template("_builder.html", context=ctx)


ROUTES = [builder_page, builder_action]
