"""Pipelines: save a spec (validated by planning it), show it with parameter forms, run it."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.manifest import Manifest
from reef.pipeline import upstream
from reef.server import dag
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post
from reef.store.people import Principal, check_name


def save_pipeline(hub: Hub, who: Principal, project: str, data: Any) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object with 'name' and 'steps'")
    name = check_name("pipeline", data.get("name"))
    spec = {k: v for k, v in data.items() if k != "name"}
    hub.orchestrator.planner.plan(project, spec, who)  # refuse a pipeline that could not run
    created = hub.runs.save_pipeline(hub.projects.get(project).id, name, spec, who.name)
    hub.audit.record(
        who.name, "pipeline.create" if created else "pipeline.update", f"pipeline {name}", project
    )
    return {"name": name, "created": created, **spec}


def with_params(spec: dict, overrides: Any) -> dict:
    """The spec with per-step parameter overrides ({step: {param: value}}) applied."""
    if overrides is None:
        return spec
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise InvalidInput("'params' must map step names to objects of parameter values")
    names = {s["name"] for s in spec["steps"]}
    if unknown := set(overrides) - names:
        raise InvalidInput(f"no step(s) named {', '.join(sorted(unknown))} in this pipeline")
    steps = [
        {**s, "params": {**s.get("params", {}), **overrides.get(s["name"], {})}}
        for s in spec["steps"]
    ]
    return {**spec, "steps": steps}


def start_run(hub: Hub, who: Principal, project: str, name: str, overrides: Any) -> int:
    pipeline = hub.runs.pipeline(hub.projects.get(project).id, name)
    return hub.orchestrator.start(project, name, with_params(pipeline["spec"], overrides), who)


def pipeline_context(hub: Hub, who: Principal, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    pipeline = hub.runs.pipeline(p.id, name)
    planned = hub.orchestrator.planner.plan(project, pipeline["spec"], who)
    forms = []
    for step, spec in zip(planned, pipeline["spec"]["steps"], strict=False):
        module_project, module = step["module"].split("/", 1)
        manifest: Manifest = hub.modules.manifest(module_project, module, step["commit"])
        forms.append({"step": step, "manifest": manifest, "given": spec.get("params", {})})
    runs = [r for r in hub.runs.list_runs(p.id, limit=200) if r.pipeline == name][:20]
    drawing = dag.svg(
        [
            dag.Node(
                f["step"]["name"],
                f["step"]["module"].split("/", 1)[1],
                tuple(upstream(f["step"]["inputs"])),
            )
            for f in forms
        ]
    )
    return {"project": p, "pipeline": pipeline, "forms": forms, "runs": runs, "dag": drawing}


def form_overrides(form: dict[str, str]) -> dict[str, dict[str, str]]:
    """Form fields `STEP.PARAM` into {step: {param: value}}; the manifest coerces the strings."""
    out: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        if "." in key and not key.startswith("_"):
            step, param = key.split(".", 1)
            out.setdefault(step, {})[param] = value
    return out


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/pipelines", access="reporter")
def list_pipelines_api(hub: HubDep, project: FromPath[str]) -> list[dict]:
    return hub.runs.pipelines(hub.projects.get(project).id)


@post("/api/projects/{project:str}/pipelines", access="developer", status_code=201)
def save_pipeline_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[Any]
) -> dict:
    return save_pipeline(hub, request.user, project, data)


@get("/api/projects/{project:str}/pipelines/{name:str}", access="reporter")
def pipeline_api(hub: HubDep, project: FromPath[str], name: FromPath[str]) -> dict:
    return hub.runs.pipeline(hub.projects.get(project).id, name)


@post("/api/projects/{project:str}/pipelines/{name:str}/runs", access="developer", status_code=201)
def run_pipeline_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[Any] = None,
) -> dict:
    overrides = data.get("params") if isinstance(data, dict) else None
    return {"id": start_run(hub, request.user, project, name, overrides)}


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/pipelines/{name:str}", access="reporter")
def pipeline_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str]
) -> Template:
    return Template("pipeline.html", context=pipeline_context(hub, request.user, project, name))


@post("/projects/{project:str}/pipelines/{name:str}/runs", access="developer")
def run_pipeline_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    run_id = start_run(hub, request.user, project, name, form_overrides(data))
    return Redirect(f"/projects/{project}/runs/{run_id}")


ROUTES = [
    list_pipelines_api,
    save_pipeline_api,
    pipeline_api,
    run_pipeline_api,
    pipeline_page,
    run_pipeline_page,
]
