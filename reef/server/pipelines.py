"""Pipelines: save a spec (validated by planning it), show it with parameter forms, run it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import anyio
import msgspec
import yaml
from litestar import Request, Response
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import UNSET, Meta, UnsetType

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.manifest import Manifest
from reef.pipeline import upstream
from reef.server import dag
from reef.server.bodies import JSON, YAML, convert, decode, documented
from reef.server.project_path import RUNS_TARGET, runs_fragment, runs_links, wants
from reef.server.routes import Form, FromPath, FromQuery, HubDep, JSONBody, get, post
from reef.server.shaped import shaped
from reef.store.db import now
from reef.store.people import Principal, check_name

STEPS_EXAMPLE = [
    {"name": "split", "module": "library/split", "inputs": {"data": "dataset:iris"}},
    {"name": "train", "module": "library/gradient-boosting", "inputs": {"train": "split.train"},
     "register": "iris-model"},
]  # fmt: skip


class PipelineSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A pipeline: its steps (each {name, module, inputs, params, ...}; `reef.pipeline`
    checks them) and its options. Sent as JSON, or as the same document in YAML."""

    name: Annotated[str, Meta(examples=["iris"])]
    steps: Annotated[list[dict[str, Any]], Meta(examples=[STEPS_EXAMPLE])]
    description: str | UnsetType = UNSET
    seed: Annotated[int | UnsetType | None, Meta(description="the runs' random seed")] = UNSET
    cache: Annotated[bool | UnsetType, Meta(description="reuse identical earlier steps")] = UNSET
    priority: Annotated[int | UnsetType, Meta(description="higher runs first")] = UNSET
    promote: Annotated[
        str | UnsetType | None, Meta(description="alias to point at the models it registers")
    ] = UNSET


class RunRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A run of the saved pipeline: per-step parameter overrides, whether to reuse earlier
    identical steps (`cache`) and a queue `priority` instead of the pipeline's."""

    params: Annotated[
        dict[str, dict[str, Any]] | None, Meta(examples=[{"train": {"max_depth": 4}}])
    ] = None
    cache: bool | None = None
    priority: int | None = None


class PipelineSummary(msgspec.Struct, forbid_unknown_fields=True):
    """A saved pipeline, as the list shows it."""

    name: Annotated[str, Meta(examples=["iris"])]
    spec: Annotated[
        dict[str, Any],
        Meta(description="steps and options as saved (a PipelineSpec without its name)"),
    ]
    created_by: str
    updated_at: datetime


class Pipeline(PipelineSummary):
    """A saved pipeline."""

    created_at: datetime


class SavedPipeline(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The pipeline as saved: the spec's fields (options only when given) and whether it is
    new (`created`) or replaced an earlier one."""

    name: str
    created: Annotated[bool, Meta(description="false: an existing pipeline was replaced")]
    steps: Annotated[list[dict[str, Any]], Meta(examples=[STEPS_EXAMPLE])]
    description: str | UnsetType = UNSET
    seed: int | UnsetType | None = UNSET
    cache: bool | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    promote: str | UnsetType | None = UNSET


class RunStarted(msgspec.Struct, forbid_unknown_fields=True):
    """The run started (queued)."""

    id: Annotated[int, Meta(description="the run's id", examples=[42])]


def save_pipeline(hub: Hub, who: Principal, project: str, data: PipelineSpec) -> dict:
    name = check_name("pipeline", data.name)
    spec = {k: v for k, v in msgspec.to_builtins(data).items() if k != "name"}
    hub.orchestrator.planner.plan(project, spec, who)  # refuse a pipeline that could not run
    created = hub.runs.save_pipeline(hub.projects.get(project).id, name, spec, who.name)
    hub.audit.record(
        who.name, "pipeline.create" if created else "pipeline.update", f"pipeline {name}", project
    )
    return {"name": name, "created": created, **spec}


def with_params(spec: dict, overrides: dict[str, dict[str, Any]] | None) -> dict:
    """The spec with per-step parameter overrides ({step: {param: value}}) applied."""
    if overrides is None:
        return spec
    names = {s["name"] for s in spec["steps"]}
    if unknown := set(overrides) - names:
        raise InvalidInput(f"no step(s) named {', '.join(sorted(unknown))} in this pipeline")
    steps = [
        {**s, "params": {**s.get("params", {}), **overrides.get(s["name"], {})}}
        for s in spec["steps"]
    ]
    return {**spec, "steps": steps}


def start_run(
    hub: Hub,
    who: Principal,
    project: str,
    name: str,
    overrides: dict[str, dict[str, Any]] | None,
    cache: bool | None = None,
    priority: int | None = None,
) -> int:
    """Run a saved pipeline, with per-step parameter overrides; `cache=False` runs every step
    even where an earlier identical step could be reused; `priority` overrides the
    pipeline's (the planner checks both)."""
    pipeline = hub.runs.pipeline(hub.projects.get(project).id, name)
    spec = with_params(pipeline["spec"], overrides)
    if cache is not None:
        spec = {**spec, "cache": cache}
    if priority is not None:
        spec = {**spec, "priority": priority}
    run_id = hub.orchestrator.start(project, name, spec, who)
    hub.triggers.store.record_origin(run_id, "manual", None, None, 1, now())
    return run_id


def pipeline_context(hub: Hub, who: Principal, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    pipeline = hub.runs.pipeline(p.id, name)
    planned = hub.orchestrator.planner.plan(project, pipeline["spec"], who)
    forms = []
    for step, spec in zip(planned, pipeline["spec"]["steps"], strict=False):
        module_project, module = step.module.split("/", 1)
        manifest: Manifest = hub.modules.manifest(module_project, module, step.commit_sha)
        forms.append({"step": step, "manifest": manifest, "given": spec.get("params", {})})
    runs = [r for r in hub.runs.list_runs(p.id, limit=200) if r.pipeline == name][:20]
    drawing = dag.svg(
        [
            dag.Node(
                f["step"].name,
                f["step"].module.split("/", 1)[1],
                tuple(upstream(f["step"].inputs)),
            )
            for f in forms
        ]
    )
    return {
        "project": p,
        "pipeline": pipeline,
        "forms": forms,
        "runs": runs,
        "dag": drawing,
        "yaml": to_yaml(name, pipeline["spec"]),
        "triggers": hub.triggers.listing(project, name),
    }


def form_overrides(form: dict[str, str]) -> dict[str, dict[str, str]]:
    """Form fields `STEP.PARAM` into {step: {param: value}}; the manifest coerces the strings."""
    out: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        if "." in key and not key.startswith("_"):
            step, param = key.split(".", 1)
            out.setdefault(step, {})[param] = value
    return out


def form_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number, not {text!r}") from None


def parse_spec(body: bytes, content_type: str) -> PipelineSpec:
    """A pipeline spec from a JSON or YAML request body."""
    if "yaml" not in content_type:
        return decode(body, PipelineSpec)
    try:
        data = yaml.safe_load(body.decode(errors="replace"))
    except yaml.YAMLError as e:
        raise InvalidInput(f"the pipeline is not valid YAML: {e}") from None
    return convert(data, PipelineSpec)


def to_yaml(name: str, spec: dict) -> str:
    return yaml.safe_dump({"name": name, **spec}, sort_keys=False, allow_unicode=True)


EXAMPLE = """name: my-pipeline
steps:
  - name: split
    module: library/split
    inputs: {data: "dataset:DATASET"}
    params: {test_size: 0.25, label: label}
  - name: train
    module: library/gradient-boosting
    inputs: {train: split.train}
    register: my-model
  - name: evaluate
    module: library/evaluate
    inputs: {model: train.model, test: split.test}
"""


@dataclass
class _OrYaml(Operation):
    """The pipeline route's operation: its 200 may be YAML too (`?format=yaml`)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[YAML] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/pipelines", access="reporter")
def list_pipelines_api(hub: HubDep, project: FromPath[str]) -> list[PipelineSummary]:
    return shaped(list[PipelineSummary], hub.runs.pipelines(hub.projects.get(project).id))


@post(
    "/api/projects/{project:str}/pipelines",
    access="developer",
    status_code=201,
    operation_class=documented({JSON: PipelineSpec, YAML: PipelineSpec}),
)
async def save_pipeline_api(request: Request, project: FromPath[str]) -> SavedPipeline:
    """Create or replace a pipeline, sent as JSON or as YAML (Content-Type: application/yaml)."""
    data = parse_spec(await request.body(), request.headers.get("content-type", ""))
    hub: Hub = request.app.state.hub
    saved = await anyio.to_thread.run_sync(save_pipeline, hub, request.user, project, data)
    return shaped(SavedPipeline, saved)


@get("/api/projects/{project:str}/pipelines/{name:str}", access="reporter", operation_class=_OrYaml)
def pipeline_api(
    hub: HubDep, project: FromPath[str], name: FromPath[str], format: FromQuery[str] = "json"
) -> Response[Pipeline]:
    """The pipeline; `?format=yaml` gives its spec as YAML, as it would be saved."""
    pipeline = hub.runs.pipeline(hub.projects.get(project).id, name)
    if format == "yaml":
        text: Any = to_yaml(name, pipeline["spec"])  # the YAML answer, declared in `responses`
        return Response(text, media_type=YAML)
    return Response(shaped(Pipeline, pipeline))


@post("/api/projects/{project:str}/pipelines/{name:str}/runs", access="developer", status_code=201)
def run_pipeline_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[RunRequest | None] = None,
) -> RunStarted:
    asked = data or RunRequest()
    run_id = start_run(hub, request.user, project, name, asked.params, asked.cache, asked.priority)
    return RunStarted(id=run_id)


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/pipelines/{name:str}", access="reporter")
def pipeline_page(
    request: HTMXRequest, hub: HubDep, project: FromPath[str], name: FromPath[str]
) -> Template:
    """The pipeline; an htmx request for its runs table gets that fragment only."""
    src = f"/projects/{project}/pipelines/{name}"
    if wants(request, RUNS_TARGET):
        return runs_fragment(hub, project, src, pipeline=name)
    ctx = pipeline_context(hub, request.user, project, name)
    live = {"runs_src": src, **runs_links(project, ctx["runs"], name)}
    return Template("pipeline.html", context={**ctx, **live})


@get("/projects/{project:str}/pipelines/new", access="developer")
def new_pipeline_page(hub: HubDep, project: FromPath[str]) -> Template:
    return Template(
        "pipeline_yaml.html",
        context={
            "project": hub.projects.get(project),
            "name": None,
            "yaml": EXAMPLE,
            "error": None,
        },
    )


@post("/projects/{project:str}/pipelines/yaml", access="developer")
def save_yaml_page(request: Request, hub: HubDep, project: FromPath[str], data: Form) -> Any:
    """Save a pipeline from the YAML editor; on error, show the editor again with the reason."""
    text = data.get("yaml", "")
    try:
        saved = save_pipeline(hub, request.user, project, parse_spec(text.encode(), "yaml"))
    except InvalidInput as e:
        return Template(
            "pipeline_yaml.html",
            status_code=400,
            context={
                "project": hub.projects.get(project),
                "name": data.get("name"),
                "yaml": text,
                "error": e.message,
            },
        )
    return Redirect(f"/projects/{project}/pipelines/{saved['name']}")


@post("/projects/{project:str}/pipelines/{name:str}/runs", access="developer")
def run_pipeline_page(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    run_id = start_run(
        hub,
        request.user,
        project,
        name,
        form_overrides(data),
        cache=data.get("cache", "true") != "false",
        priority=form_int(data.get("priority") or "0", "priority"),
    )
    return Redirect(f"/projects/{project}/runs/{run_id}")


ROUTES = [
    new_pipeline_page,
    save_yaml_page,
    list_pipelines_api,
    save_pipeline_api,
    pipeline_api,
    run_pipeline_api,
    pipeline_page,
    run_pipeline_page,
]
