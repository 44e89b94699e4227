"""The no-code pipeline builder: add steps from the catalog, fill their forms, wire outputs
to inputs, see the DAG and what is wrong, save. The draft spec travels with the form; each
change re-renders the builder (htmx), validated by the same planner that runs pipelines."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from reef.errors import InvalidInput, ReefError
from reef.hub import Hub
from reef.manifest import Manifest
from reef.pipeline import STEP_NAME, upstream
from reef.server import builder_draft, dag
from reef.server.bodies import convert
from reef.server.modules import catalog
from reef.server.pipelines import PipelineSpec, save_pipeline
from reef.server.routes import Form, FromPath, FromQuery, HubDep, get, post
from reef.store.people import Principal
from reef.store.projects import LIBRARY


def add_step(hub: Hub, who: Principal, project: str, draft: dict, module: str, name: str) -> None:
    """Append a step running `module`, its inputs wired to the likeliest sources, the label
    chosen earlier carried over, and a model step registered under the pipeline's name."""
    module_project, _, module_name = module.partition("/")
    hub.projects.require(module_project, who, "reporter")
    manifest = hub.modules.manifest(module_project, module_name)
    taken = {s["name"] for s in draft["steps"]}
    step_name = unique(module_name.replace(".", "-"), taken)
    sources = options(hub, project, draft, manifest_of=lambda s: _manifest(hub, s))
    inputs = {key: guess(key, sources.get(kind, [])) for key, kind in manifest.inputs.items()}
    label = builder_draft.chosen_label(draft)
    params = {
        k: label
        for k, p in manifest.params.items()
        if label and k in builder_draft.CARRIED and p.type == "column"
    }
    step = {
        "name": step_name,
        "module": module,
        "inputs": {k: v for k, v in inputs.items() if v},
        "params": params,
    }
    if manifest.kind == "model":
        step["register"] = name or step_name
    draft["steps"].append(step)


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
    found = named or outputs[-1:] or choices[:1]
    return found[-1] if found else None


def context(
    hub: Hub,
    who: Principal,
    project: str,
    draft: dict,
    name: str = "",
    error: str | None = None,
    touched: bool = False,
) -> dict[str, Any]:
    """The builder's page data. Until the person has changed a field, what is still missing
    is shown as a to-do, not as an error."""
    manifest_of, columns_of = partial(_manifest, hub), partial(_columns, hub, project)
    steps = []
    for step in draft["steps"]:
        manifest = manifest_of(step)
        sources = options(hub, project, draft, manifest_of, before=step["name"])
        columns = {
            key: builder_draft.columns(draft, ref, manifest_of, columns_of)
            for key, ref in step.get("inputs", {}).items()
        }
        steps.append({"spec": step, "manifest": manifest, "sources": sources, "columns": columns})
    problem = error
    if draft["steps"] and problem is None:
        problem = validate(hub, who, project, draft)
    return {
        "project": hub.projects.get(project),
        "draft": draft,
        "steps": steps,
        "problem": problem,
        "touched": touched or error is not None,
        "dag": drawing(draft),
        "name": name,
        "modules": catalog(hub, project),
        "draft_json": json.dumps(draft),
    }


def drawing(draft: dict) -> str:
    return dag.svg(
        [
            dag.Node(s["name"], s["module"].split("/", 1)[1], tuple(upstream(s.get("inputs", {}))))
            for s in draft["steps"]
        ]
    )


def validate(hub: Hub, who: Principal, project: str, draft: dict) -> str | None:
    """What stops the draft from running: the planner's verdict, then the columns that
    reach each step from the steps before it."""
    try:
        hub.orchestrator.planner.plan(project, draft, who)
        builder_draft.check_columns(draft, partial(_manifest, hub), partial(_columns, hub, project))
    except ReefError as e:
        return e.message
    return None


def _columns(hub: Hub, project: str, dataset: str, version: str | None) -> list[str]:
    return [c for c, _ in hub.datasets.info(project, dataset, version).columns]


def normalise(hub: Hub, old: dict, draft: dict, name: str) -> None:
    """Form strings back to typed values, a label chosen once carried to later steps, and a
    model still registered under its step's name renamed after the pipeline once it has one."""
    manifest_of = partial(_manifest, hub)
    for step in draft["steps"]:
        step["params"] = builder_draft.typed(manifest_of(step), step.get("params", {}))
        if name and step.get("register") == step["name"]:
            step["register"] = name
    builder_draft.carry(old, draft, manifest_of)


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
    draft, action, error = builder_draft.from_form(data), data.get("action", "update"), None
    name = data.get("name", "")
    try:
        normalise(hub, json.loads(data.get("draft") or '{"steps": []}'), draft, name)
        if action == "add":
            add_step(hub, request.user, project, draft, data.get("module", ""), name)
        elif action.startswith("remove:"):
            draft["steps"] = [s for s in draft["steps"] if s["name"] != action[7:]]
        elif action == "save":
            return save(hub, request.user, project, draft, name)
    except ReefError as e:
        error = e.message
    touched = action in ("update", "save")
    ctx = context(hub, request.user, project, draft, name, error, touched)
    return Template("_builder.html", context=ctx)


def save(hub: Hub, who: Principal, project: str, draft: dict, name: str) -> Response:
    """Save the draft if it could run and every column it names reaches its step."""
    if problem := validate(hub, who, project, draft):
        raise InvalidInput(problem)
    saved = save_pipeline(hub, who, project, convert({**draft, "name": name}, PipelineSpec))
    return Response("", headers={"HX-Redirect": f"/projects/{project}/pipelines/{saved['name']}"})


ROUTES = [builder_page, builder_action]
