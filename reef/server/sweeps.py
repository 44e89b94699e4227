"""Sweeps over one step's parameters: start the trials as runs, rank them, plot the metric
against each parameter, link the best run."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import UNSET, Meta, UnsetType

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.runtime.sweeps import ranked, scoring, trials
from reef.server.bodies import convert
from reef.server.pipelines import form_int, with_params
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post
from reef.server.shaped import shaped
from reef.store import sweeps
from reef.store.people import Principal


class Sweep(msgspec.Struct, forbid_unknown_fields=True):
    """Trials of one step's parameters: every combination of `grid`'s values, or `trials`
    random draws from `random` (per parameter a list or {min, max, log?, int?}). `metric`
    ranks them (a validation score: `goal` max or min); `test_metric` is reported beside it."""

    step: Annotated[str, Meta(examples=["train"])]
    metric: Annotated[str, Meta(examples=["evaluate/val_accuracy"])]
    goal: Literal["max", "min"] = "max"
    grid: Annotated[dict[str, list[Any]] | UnsetType, Meta(examples=[{"max_depth": [2, 4, 8]}])] = (
        UNSET
    )
    random: Annotated[
        dict[str, Any] | UnsetType, Meta(examples=[{"lr": {"min": 1e-4, "max": 0.1, "log": True}}])
    ] = UNSET
    trials: int | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    test_metric: str | None = None


class SweepStarted(msgspec.Struct, forbid_unknown_fields=True):
    """The sweep and its trial runs (queued)."""

    id: Annotated[int, Meta(examples=[7])]
    runs: Annotated[list[int], Meta(description="the trials' run ids", examples=[[41, 42]])]


class SweepRecord(msgspec.Struct, forbid_unknown_fields=True):
    """The stored sweep: its pipeline and its search (`spec`: a Sweep's fields)."""

    id: int
    project_id: int
    pipeline: str
    spec: Annotated[
        dict[str, Any], Meta(description="step, grid or random (and trials, seed), metric, goal")
    ]
    created_by: str
    created_at: datetime


class Trial(msgspec.Struct, forbid_unknown_fields=True):
    """One trial run: its status, the parameters it tried and its metrics so far."""

    id: Annotated[int, Meta(description="the run's id")]
    status: str
    metric: Annotated[float | None, Meta(description="the metric trials are ranked on")]
    test: Annotated[float | None, Meta(description="the test metric reported beside it")]
    params: Annotated[dict[str, Any], Meta(description="the swept parameters' values")]


class SweepView(msgspec.Struct, forbid_unknown_fields=True):
    """A sweep: its trials best first, the best one so far and whether all have ended."""

    sweep: SweepRecord
    names: Annotated[list[str], Meta(description="the swept parameters")]
    trials: list[Trial]
    best: Trial | None
    finished: bool


def start_sweep(hub: Hub, who: Principal, project: str, pipeline: str, data: Sweep) -> dict:
    """The sweep and its runs (see reef.runtime.sweeps.scoring for the metrics). Every
    trial is planned (so checked) before the first one is queued."""
    p = hub.projects.get(project)
    spec = hub.runs.pipeline(p.id, pipeline)["spec"]
    step = data.step
    if step not in {s["name"] for s in spec["steps"]}:
        raise InvalidInput(f"pipeline '{pipeline}' has no step {step!r}")
    test_metric = scoring(spec["steps"], data.metric, data.test_metric)
    asked = msgspec.to_builtins(data)
    specs = [with_params(spec, {step: params}) for params in trials(asked)]
    for i, trial in enumerate(specs):
        try:
            hub.orchestrator.planner.plan(project, trial, who)
        except InvalidInput as e:
            raise InvalidInput(f"trial {i + 1}: {e.message}") from None
    stored = {**asked, "test_metric": test_metric}
    sweep_id = sweeps.create(hub.db, p.id, pipeline, stored, who.name)
    run_ids = []
    for trial in specs:
        run_ids.append(hub.orchestrator.start(project, pipeline, trial, who))
        hub.runs.update_run(run_ids[-1], sweep_id=sweep_id)
    hub.audit.record(who.name, "sweep.create", f"sweep {sweep_id}", project, runs=len(run_ids))
    return {"id": int(sweep_id), "runs": run_ids}


def sweep_context(hub: Hub, project: str, sweep_id: int) -> dict[str, Any]:
    p = hub.projects.get(project)
    row = sweeps.get(hub.db, p.id, sweep_id)
    spec = row["spec"]
    names = list(spec.get("grid") or spec.get("random") or {})
    hub.runs.settle_metrics()
    rows = sweeps.trials(hub.db, sweep_id, spec["metric"], spec.get("test_metric"))
    for r in rows:
        params = {
            q["key"]: q["value"] for q in hub.runs.params(r["id"]) if q["step"] == spec["step"]
        }
        r["params"] = {n: params.get(n) for n in names}
    trials_ranked = ranked(rows, spec["goal"])
    done = [t for t in trials_ranked if t["metric"] is not None]
    return {
        "project": p,
        "sweep": row,
        "names": names,
        "trials": trials_ranked,
        "best": done[0] if done else None,
        "finished": all(t["status"] in ("succeeded", "failed", "cancelled") for t in trials_ranked),
    }


@post(
    "/api/projects/{project:str}/pipelines/{name:str}/sweeps", access="developer", status_code=201
)
def sweep_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    name: FromPath[str],
    data: JSONBody[Sweep],
) -> SweepStarted:
    return shaped(SweepStarted, start_sweep(hub, request.user, project, name, data))


@get("/api/projects/{project:str}/sweeps/{sweep_id:int}", access="reporter")
def sweep_get_api(hub: HubDep, project: FromPath[str], sweep_id: FromPath[int]) -> SweepView:
    ctx = sweep_context(hub, project, sweep_id)
    return shaped(SweepView, {k: v for k, v in ctx.items() if k != "project"})


@get("/projects/{project:str}/sweeps/{sweep_id:int}", access="reporter")
def sweep_page(
    request: HTMXRequest, hub: HubDep, project: FromPath[str], sweep_id: FromPath[int]
) -> Template:
    """The sweep; htmx's poll gets the trials fragment only."""
    template = "_sweep.html" if request.htmx else "sweep.html"
    return Template(template, context=sweep_context(hub, project, sweep_id))


@post("/projects/{project:str}/pipelines/{name:str}/sweeps", access="developer")
def sweep_form(
    request: Request, hub: HubDep, project: FromPath[str], name: FromPath[str], data: Form
) -> Redirect:
    """The pipeline page's sweep form: a step, a grid or random search, `PARAM = ...` lines."""
    sweep = start_sweep(hub, request.user, project, name, convert(form_sweep(data), Sweep))
    return Redirect(f"/projects/{project}/sweeps/{sweep['id']}")


def form_sweep(data: dict[str, str]) -> dict[str, Any]:
    """The form's fields as a sweep request. Each line of `space` is `PARAM = v1, v2, ...`
    or, for a random search, `PARAM = MIN..MAX [log] [int]`."""
    mode = data.get("mode", "grid")
    if mode not in ("grid", "random"):
        raise InvalidInput("search must be grid or random")
    space: dict[str, Any] = {}
    for number, line in enumerate((data.get("space") or "").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, values = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"line {number}: write PARAM = values, not {line.strip()!r}")
        space[key.strip()] = _domain(values, mode, number)
    body: dict[str, Any] = {
        "step": data.get("step"),
        mode: space,
        "metric": data.get("metric"),
        "goal": data.get("goal", "max"),
    }
    if data.get("test_metric"):
        body["test_metric"] = data["test_metric"]
    if mode == "random":
        body["trials"] = form_int(data.get("trials") or "", "trials")
    return body


def _domain(text: str, mode: str, number: int) -> Any:
    words = text.split()
    if ".." not in text:
        return [json_value(v) for v in text.split(",") if v.strip()]
    if mode == "grid":
        raise InvalidInput(f"line {number}: a grid needs a list of values; ranges are for random")
    low, _, high = words[0].partition("..")
    flags = set(words[1:])
    if unknown := flags - {"log", "int"}:
        raise InvalidInput(f"line {number}: unknown range option(s) {', '.join(sorted(unknown))}")
    try:
        bounds = {"min": float(low), "max": float(high)}
    except ValueError:
        raise InvalidInput(f"line {number}: a range is MIN..MAX with numbers") from None
    return {**bounds, "log": "log" in flags, "int": "int" in flags}


def json_value(text: str) -> Any:
    try:
        return json.loads(text.strip())
    except json.JSONDecodeError:
        return text.strip()


ROUTES = [sweep_api, sweep_get_api, sweep_page, sweep_form]
