"""Device time over HTTP: the usage report of a project (and, for admins, of every project) as
a page, JSON and CSV, and the project's weekly GPU-hour quota (API and the page's form). The
accounting itself lives in `reef.runtime.usage`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from reef.errors import InvalidInput
from reef.runtime import usage
from reef.runtime.usage import Quota, UsageReport
from reef.server.file_answers import file_answer
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post, put

BASE = "/api/projects/{project:str}"
PAGE = "/projects/{project:str}"
By = Annotated[str, QueryParameter(description="person, pipeline, model (admin: project)")]
Period = Annotated[str, QueryParameter(description="day, or week (weeks start on Monday, UTC)")]


class QuotaIn(msgspec.Struct, forbid_unknown_fields=True):
    """`gpu_hours_per_week`: GPU hours the project may use per week (Monday 00:00 UTC to the
    next); null removes the quota."""

    gpu_hours_per_week: float | None


def _csv(rep: UsageReport) -> Response:
    name = f"usage-{rep.project or 'all'}-{rep.by}-{rep.period}.csv"
    return Response(
        usage.as_csv(rep),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# API ---------------------------------------------------------------------------------
@get(f"{BASE}/usage", access="reporter")
def usage_api(
    hub: HubDep, project: FromPath[str], by: By = "person", period: Period = "week"
) -> UsageReport:
    """Device time of the project's steps by person, pipeline or model, per day or week."""
    return usage.report(hub, project, by, period)


@get(f"{BASE}/usage.csv", access="reporter", responses=file_answer("text/csv", "the report's rows"))
def usage_csv_api(
    hub: HubDep, project: FromPath[str], by: By = "person", period: Period = "week"
) -> Response:
    """The rows of the usage report as CSV (period, group, gpu_hours, cpu_hours, steps)."""
    return _csv(usage.report(hub, project, by, period))


@get("/api/usage", access="admin")
def all_usage_api(hub: HubDep, by: By = "project", period: Period = "week") -> UsageReport:
    """Device time across every project (admins)."""
    return usage.report(hub, None, by, period)


@get("/api/usage.csv", access="admin", responses=file_answer("text/csv", "the report's rows"))
def all_usage_csv_api(hub: HubDep, by: By = "project", period: Period = "week") -> Response:
    return _csv(usage.report(hub, None, by, period))


@get(f"{BASE}/quota", access="reporter")
def quota_api(hub: HubDep, project: FromPath[str]) -> Quota:
    return usage.quota(hub, hub.projects.get(project).id)


@put(f"{BASE}/quota", access="owner")
def set_quota_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[QuotaIn]
) -> Quota:
    """Set or remove the project's weekly GPU-hour quota (owners; audited)."""
    return usage.set_quota(hub, project, data.gpu_hours_per_week, request.user)


# pages -------------------------------------------------------------------------------
def _page(request: Request, hub: HubDep, project: str | None, by: str, period: str) -> Template:
    rep = usage.report(hub, project, by, period)
    role = hub.projects.role_of(project, request.user) if project else None
    context = {
        "report": rep,
        "project": hub.projects.get(project) if project else None,
        "chart": usage.chart(rep) if rep.rows else None,
        "groups": ["person", "pipeline", "model", *(["project"] if not project else [])],
        "can_set_quota": role == "owner" or request.user.is_admin,
        "base": f"/projects/{project}/usage" if project else "/usage",
    }
    return Template("usage.html", context=context)


@get(f"{PAGE}/usage", access="reporter")
def usage_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    by: By = "person",
    period: Period = "week",
) -> Template:
    return _page(request, hub, project, by, period)


@get(f"{PAGE}/usage.csv", access="reporter")
def usage_csv_page(
    hub: HubDep, project: FromPath[str], by: By = "person", period: Period = "week"
) -> Response:
    return _csv(usage.report(hub, project, by, period))


@get("/usage", access="admin")
def all_usage_page(
    request: Request, hub: HubDep, by: By = "project", period: Period = "week"
) -> Template:
    return _page(request, hub, None, by, period)


@get("/usage.csv", access="admin")
def all_usage_csv_page(hub: HubDep, by: By = "project", period: Period = "week") -> Response:
    return _csv(usage.report(hub, None, by, period))


@post(f"{PAGE}/quota", access="owner")
def quota_page(request: Request, hub: HubDep, project: FromPath[str], data: Form) -> Redirect:
    """The quota form: a number of GPU hours, or empty for no quota."""
    text = (data.get("gpu_hours_per_week") or "").strip()
    try:
        hours = float(text) if text else None
    except ValueError:
        raise InvalidInput(f"gpu_hours_per_week: '{text}' is not a number of hours") from None
    usage.set_quota(hub, project, hours, request.user)
    return Redirect(f"/projects/{project}/usage#quota")


ROUTES = [
    usage_api,
    usage_csv_api,
    all_usage_api,
    all_usage_csv_api,
    quota_api,
    set_quota_api,
    usage_page,
    usage_csv_page,
    all_usage_page,
    all_usage_csv_page,
    quota_page,
]
