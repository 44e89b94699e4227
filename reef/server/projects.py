"""Projects and members: API under /api/projects, pages under /projects, one context each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from reef.errors import Conflict, PermissionDenied
from reef.hub import Hub
from reef.runtime.monitoring import alerts
from reef.server.dataset_responses import DatasetSummary
from reef.server.members import Member, as_members, members_context
from reef.server.model_answers import ModelSummary
from reef.server.modules import ModuleCard, module_card
from reef.server.pipelines import PipelineSummary
from reef.server.project_path import RUNS_TARGET, path_context, runs_fragment, runs_links, wants
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, patch, post
from reef.server.wording import ROLE_HELP, activity
from reef.store.people import Principal
from reef.store.projects import Project
from reef.store.runs import Run


def project_context(hub: Hub, project: str, who: Principal) -> dict[str, Any]:
    p = hub.projects.get(project)
    return {
        "project": p,
        "role": hub.projects.role_of(project, who),
        "datasets": hub.catalog.datasets(p.id),
        "modules": [module_card(hub, project, m) for m in hub.modules.list_modules(project)],
        "pipelines": hub.runs.pipelines(p.id),
        "runs": hub.runs.list_runs(p.id, limit=20),
        "models": hub.models.list(p.id),
        "members": hub.projects.members(project),
        "activity": hub.audit.list(project, limit=15),
        "alerts": alerts(hub, project),
    }


Description = Annotated[
    str, msgspec.Meta(description="what the project is for", examples=["Churn models for sales"])
]


class NewProject(msgspec.Struct, forbid_unknown_fields=True):
    """A project: a URL-safe name and an optional description."""

    name: Annotated[str, msgspec.Meta(examples=["churn"])]
    description: Description = ""


class ProjectChange(msgspec.Struct, forbid_unknown_fields=True):
    description: Description


Role = Annotated[
    str | None,
    msgspec.Meta(description="your role: reporter, developer, maintainer or owner (admins "
                 "act as owners; null: not a member)", examples=["owner"]),
]  # fmt: skip


class ProjectListed(msgspec.Struct):
    """A project you can see, with your role in it."""

    name: str
    description: str
    created_at: datetime
    role: Role


class AuditEntry(msgspec.Struct):
    """Something someone did, as the audit log keeps it."""

    id: int
    at: datetime
    actor: str
    action: Annotated[str, msgspec.Meta(examples=["run.create"])]
    project: str | None
    target: Annotated[str, msgspec.Meta(examples=["run 12"])]
    detail: Annotated[str | None, msgspec.Meta(description="JSON text")]


class Alert(msgspec.Struct):
    """An open alert of a model (drift, live accuracy)."""

    model: str
    kind: Annotated[str, msgspec.Meta(examples=["drift"])]
    version: int
    message: str
    detail: dict[str, Any]
    raised_at: datetime
    url: Annotated[str, msgspec.Meta(description="the model page's monitoring section")]


class ProjectOverview(msgspec.Struct):
    """A project and what is in it: datasets, modules, pipelines, the last 20 runs, models,
    members, the last 15 audit entries, and open model alerts."""

    project: Project
    role: Role
    datasets: list[DatasetSummary]
    modules: list[ModuleCard]
    pipelines: list[PipelineSummary]
    runs: list[Run]
    models: list[ModelSummary]
    members: list[Member]
    activity: list[AuditEntry]
    alerts: list[Alert]


def as_alerts(rows: list[dict[str, Any]]) -> list[Alert]:
    return [Alert(**a) for a in rows]


def overview(ctx: dict[str, Any]) -> ProjectOverview:
    """`project_context` as the API answers it."""
    return ProjectOverview(
        project=ctx["project"],
        role=ctx["role"],
        datasets=[DatasetSummary(**d) for d in ctx["datasets"]],
        modules=[ModuleCard(**m) for m in ctx["modules"]],
        pipelines=[PipelineSummary(**p) for p in ctx["pipelines"]],
        runs=ctx["runs"],
        models=[ModelSummary(**m) for m in ctx["models"]],
        members=as_members(ctx["members"]),
        activity=[AuditEntry(**a) for a in ctx["activity"]],
        alerts=as_alerts(ctx["alerts"]),
    )


def create_project(hub: Hub, who: Principal, data: Mapping[str, str]) -> Project:
    """`data`: the name and description (from a NewProject, a form or the MLflow API)."""
    name, description = data.get("name", ""), data.get("description") or ""
    if not hub.site.may_create_projects(who):
        raise PermissionDenied(
            "an administrator has limited who may create projects: ask one to allow you"
        )
    project = hub.projects.create(name, who, description)
    hub.audit.record(who.name, "project.create", f"project {project.name}", project.name)
    return project


# API ---------------------------------------------------------------------------------
@get("/api/projects", access="user")
def list_projects_api(request: Request, hub: HubDep) -> list[ProjectListed]:
    return [ProjectListed(**p) for p in hub.projects.visible_to(request.user)]


@post("/api/projects", access="user", status_code=201)
def create_project_api(request: Request, hub: HubDep, data: JSONBody[NewProject]) -> Project:
    return create_project(hub, request.user, msgspec.structs.asdict(data))


@get("/api/projects/{project:str}", access="reporter")
def project_api(request: Request, hub: HubDep, project: FromPath[str]) -> ProjectOverview:
    return overview(project_context(hub, project, request.user))


@patch("/api/projects/{project:str}", access="maintainer")
def update_project_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[ProjectChange]
) -> Project:
    hub.audit.record(request.user.name, "project.update", f"project {project}", project)
    return hub.projects.update(project, data.description)


@delete("/api/projects/{project:str}", access="owner", status_code=204)
def delete_project_api(request: Request, hub: HubDep, project: FromPath[str]) -> None:
    ctx = project_context(hub, project, request.user)
    if ctx["datasets"] or ctx["runs"] or ctx["models"] or ctx["modules"]:
        raise Conflict(f"project '{project}' still has datasets, modules, runs or models")
    hub.projects.delete(project)
    hub.audit.record(request.user.name, "project.delete", f"project {project}", project)


# pages -------------------------------------------------------------------------------
@get("/", access="user")
def home_page(request: Request, hub: HubDep) -> Template:
    return Template(
        "projects.html",
        context={
            "projects": hub.projects.visible_to(request.user),
            "can_create": hub.site.may_create_projects(request.user),
        },
    )


@post("/projects", access="user")
def create_project_page(request: Request, hub: HubDep, data: Form) -> Redirect:
    project = create_project(hub, request.user, data)
    return Redirect(f"/projects/{project.name}")


@get("/projects/{project:str}", access="reporter")
def project_page(request: HTMXRequest, hub: HubDep, project: FromPath[str]) -> Template:
    """The project; an htmx request for its runs table gets that fragment only."""
    if wants(request, RUNS_TARGET):
        return runs_fragment(hub, project, f"/projects/{project}")
    ctx = project_context(hub, project, request.user)
    page = {
        "path": path_context(project, ctx),
        "activity": [activity(a) for a in ctx["activity"]],
        "role_help": ROLE_HELP,
        **members_context(hub, project),
        "runs_src": f"/projects/{project}",
        **runs_links(project, ctx["runs"]),
    }
    return Template("project.html", context={**ctx, **page})


ROUTES = [
    list_projects_api,
    create_project_api,
    project_api,
    update_project_api,
    delete_project_api,
    home_page,
    create_project_page,
    project_page,
]
