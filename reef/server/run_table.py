"""The runs table (filter, sort, choose columns, page) and the comparison of 2-10 runs."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from msgspec import Meta

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.server.routes import FromPath, HubDep, get
from reef.server.run_answers import RunRow
from reef.server.shaped import shaped
from reef.store.run_search import RunQuery
from reef.store.runs import Run

DEFAULT_COLUMNS = ["metric:accuracy", "metric:loss"]


class ParamRow(msgspec.Struct, forbid_unknown_fields=True):
    """A parameter (STEP.KEY) with each run's value, in the order of `runs`."""

    name: Annotated[str, Meta(examples=["train.max_depth"])]
    values: Annotated[list[Any], Meta(description="one per run; null: the run had none")]
    differs: bool


class CodeChange(msgspec.Struct, forbid_unknown_fields=True):
    """A step whose module commit differs from the first run's."""

    step: str
    module: str
    from_: Annotated[str, Meta(description="the first run's commit")] = msgspec.field(name="from")
    to: Annotated[str, Meta(description="this run's commit")]
    runs: Annotated[tuple[int, int], Meta(description="the first run's id and this run's")]


class DataChange(msgspec.Struct, forbid_unknown_fields=True):
    """A dataset the first run and another read at different versions."""

    dataset: str
    from_: Annotated[str, Meta(description="the first run's version")] = msgspec.field(name="from")
    to: Annotated[str, Meta(description="this run's version")]
    runs: Annotated[tuple[int, int], Meta(description="the first run's id and this run's")]


class Comparison(msgspec.Struct, forbid_unknown_fields=True):
    """2-10 runs side by side."""

    runs: list[Run]
    params: Annotated[list[ParamRow], Meta(description="the differing ones first")]
    metrics: Annotated[
        dict[int, dict[str, float | None]], Meta(description="run id -> each metric's latest value")
    ]
    curves: Annotated[
        dict[str, dict[str, list[tuple[int | None, float | None]]]],
        Meta(description="metric -> run id -> its (step, value) points"),
    ]
    code: list[CodeChange]
    data: list[DataChange]


def query_from(request: Request) -> RunQuery:
    """A RunQuery from query parameters (param= and metric= may repeat; columns= is a list)."""
    q = request.query_params
    try:
        limit, offset = int(q.get("limit", 50)), int(q.get("offset", 0))
    except ValueError:
        raise InvalidInput("limit and offset must be integers") from None
    columns = [c for c in (q.get("columns") or ",".join(DEFAULT_COLUMNS)).split(",") if c]
    return RunQuery(
        status=q.get("status") or None,
        author=q.get("author") or None,
        pipeline=q.get("pipeline") or None,
        module=q.get("module") or None,
        dataset=q.get("dataset") or None,
        params=[p for p in q.getall("param", []) if p],
        metrics=[m for m in q.getall("metric", []) if m],
        sort=q.get("sort") or "-created",
        columns=columns,
        limit=limit,
        offset=offset,
    )


def chosen_ids(request: Request) -> list[int]:
    """Run ids from ?ids=1,2,3 or from repeated ?pick= (the runs table's checkboxes)."""
    texts = (request.query_params.get("ids") or "").split(",")
    texts += request.query_params.getall("pick", [])
    try:
        return [int(t) for t in texts if t.strip()]
    except ValueError:
        raise InvalidInput("ids must be a comma-separated list of run ids") from None


def compare_context(hub: Hub, project: str, run_ids: list[int]) -> dict[str, Any]:
    if not 2 <= len(set(run_ids)) <= 10:
        raise InvalidInput("compare 2 to 10 different runs")
    p = hub.projects.get(project)
    runs = [hub.runs.run(i, p.id) for i in dict.fromkeys(run_ids)]
    steps = {r.id: {s.name: s for s in hub.runs.steps(r.id)} for r in runs}
    return {
        "project": p,
        "runs": runs,
        "params": param_diff(hub, runs),
        "metrics": {r.id: hub.runs.latest_metrics(r.id) for r in runs},
        "curves": curves(hub, runs),
        "code": code_changes(runs, steps),
        "data": data_changes(runs, steps),
    }


def param_diff(hub: Hub, runs: list) -> list[dict[str, Any]]:
    """Every parameter of every run, with the runs' values side by side and whether they differ."""
    table: dict[str, dict[int, Any]] = {}
    for run in runs:
        for p in hub.runs.params(run.id):
            table.setdefault(f"{p['step']}.{p['key']}", {})[run.id] = p["value"]
    rows = [
        {
            "name": k,
            "values": [v.get(r.id) for r in runs],
            "differs": len({repr(v.get(r.id)) for r in runs}) > 1,
        }
        for k, v in table.items()
    ]
    return sorted(rows, key=lambda row: (not row["differs"], row["name"]))


def curves(hub: Hub, runs: list) -> dict[str, dict[str, list]]:
    """Metric histories by key, then by run id: what the overlaid charts draw."""
    out: dict[str, dict[str, list]] = {}
    for run in runs:
        for key, points in hub.runs.metric_history(run.id).items():
            out.setdefault(key, {})[str(run.id)] = points
    return out


def code_changes(runs: list, steps: dict) -> list[dict[str, Any]]:
    """Steps whose module commit differs from the first run's: links to the code diff."""
    first, changes = runs[0], []
    for run in runs[1:]:
        for name, step in steps[run.id].items():
            base = steps[first.id].get(name)
            if base and base.module == step.module and base.commit_sha != step.commit_sha:
                changes.append(
                    {
                        "step": name,
                        "module": step.module,
                        "from": base.commit_sha,
                        "to": step.commit_sha,
                        "runs": (first.id, run.id),
                    }
                )
    return changes


def data_changes(runs: list, steps: dict) -> list[dict[str, Any]]:
    """Datasets read at different versions by the first run and another: links to the diff."""

    def versions(run_id: int) -> dict[str, str]:
        refs = [
            v.removeprefix("dataset:")
            for s in steps[run_id].values()
            for v in s.inputs.values()
            if v.startswith("dataset:")
        ]
        return dict(r.split("@", 1) for r in refs)

    first, changes = versions(runs[0].id), []
    for run in runs[1:]:
        for name, version in versions(run.id).items():
            if name in first and first[name] != version:
                changes.append(
                    {
                        "dataset": name,
                        "from": first[name],
                        "to": version,
                        "runs": (runs[0].id, run.id),
                    }
                )
    return changes


@get("/api/projects/{project:str}/runs", access="reporter")
def list_runs_api(request: Request, hub: HubDep, project: FromPath[str]) -> Response[list[RunRow]]:
    """Runs, filtered (status, author, pipeline, module, dataset, param=STEP.KEY=V,
    metric=KEY>=X), sorted (sort=-metric:accuracy), with columns=metric:K,param:S.K, paged;
    the total is in the X-Total-Count header."""
    total, rows = hub.runs.search(hub.projects.get(project).id, query_from(request))
    return Response([RunRow(**r) for r in rows], headers={"X-Total-Count": str(total)})


@get("/api/projects/{project:str}/compare", access="reporter")
def compare_api(request: Request, hub: HubDep, project: FromPath[str]) -> Comparison:
    """2-10 runs side by side (?ids=1,2): metrics, curves, parameter diff, code and data changes."""
    ctx = compare_context(hub, project, chosen_ids(request))
    return shaped(Comparison, {k: v for k, v in ctx.items() if k != "project"})


@get("/projects/{project:str}/runs", access="reporter")
def runs_page(request: HTMXRequest, hub: HubDep, project: FromPath[str]) -> Template:
    q = query_from(request)
    total, rows = hub.runs.search(hub.projects.get(project).id, q)
    template = "_runs_found.html" if request.htmx else "runs.html"  # htmx: the table only
    return Template(
        template,
        context={"project": hub.projects.get(project), "q": q, "total": total, "rows": rows},
    )


@get("/projects/{project:str}/compare", access="reporter")
def compare_page(request: Request, hub: HubDep, project: FromPath[str]) -> Template:
    return Template("compare.html", context=compare_context(hub, project, chosen_ids(request)))


ROUTES = [list_runs_api, compare_api, runs_page, compare_page]
