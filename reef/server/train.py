""" "Train a model" from a dataset: one form on the dataset page, a saved pipeline behind it.

The form names the column to predict, the task detected from it (reef.tasks) in plain words,
the task the person may pick instead, and the columns to leave out; it re-renders itself as
those change (HTMX). Its button saves an ordinary pipeline built by `reef.train_flow` (split ->
model -> evaluate, the model registered under the pipeline's name) and runs it; the person
lands on the run's result page (reef/server/train_result.py). A target that does not fit the
task is refused with the detector's reason before anything is saved or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import Meta

from reef.errors import NotFound
from reef.hub import Hub
from reef.server.bodies import convert
from reef.server.pipelines import PipelineSpec, save_pipeline, start_run
from reef.server.routes import FromPath, FromQuery, HubDep, JSONBody, get, post
from reef.store.people import Principal
from reef.tasks import (
    Column,
    Task,
    TaskKind,
    TaskMismatch,
    check_task,
    column_roles,
    detect_task,
)
from reef.train_flow import Plan, pipeline_for

PAGE = "/projects/{project:str}/datasets/{dataset:str}/train"
API = "/api/projects/{project:str}/datasets/{dataset:str}/train"
MARK = "Made by 'Train a model'"  # the start of a flow pipeline's description
TASK_WORDS = {
    "classification": "sort rows into groups",
    "regression": "predict a number",
    "text_classification": "sort texts into groups",
    "image_classification": "sort images into groups",
}
UNUSED = ("identifier", "empty")


@dataclass(frozen=True)
class Choice:
    """What the person asked for: a target, a task ("" = the detected one), columns left out."""

    target: str
    task: str = ""
    exclude: tuple[str, ...] = ()


def choice_from_form(data: dict[str, Any], columns: list[str]) -> Choice:
    """The form's fields: `target`, `task`, and `use` (the columns ticked to learn from;
    every usable column when the form was not yet submitted, i.e. without `_form`)."""
    target = str(data.get("target") or (columns[-1] if columns else ""))
    if not data.get("_form"):
        return Choice(target, str(data.get("task") or ""))
    used = data.get("use") or []
    used = {used} if isinstance(used, str) else set(used)
    exclude = tuple(c for c in columns if c != target and c not in used)
    return Choice(target, str(data.get("task") or ""), exclude)


class TrainRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The column to predict, the kind of task (auto: the one the data suggests) and the
    columns to leave out."""

    target: Annotated[str, Meta(examples=["churned"])]
    task: Annotated[Literal["", "auto"] | TaskKind | None, Meta(examples=["auto"])] = None
    exclude: Annotated[list[str], Meta(examples=[["customer_id"]])] = []


class ColumnRole(msgspec.Struct):
    """A column and what it holds, in words (`unused`: never learnt from)."""

    name: str
    role: Annotated[
        str, Meta(examples=["a number", "an identifier (different on every row, not used)"])
    ]
    unused: bool


class TrainDetection(msgspec.Struct):
    """The task a target asks for on the latest version, in words, or why there is none."""

    target: str
    version: Annotated[int, Meta(description="the dataset version looked at")]
    task: Annotated[TaskKind | None, Meta(description="null: the target does not fit")]
    plain: Annotated[str | None, Meta(examples=["sort rows into 2 groups"])]
    reason: Annotated[str | None, Meta(description="why this task, or why none")]
    features: Annotated[list[str], Meta(description="the columns it would learn from")]
    left_out: list[str]
    columns: list[ColumnRole]


class TrainStarted(msgspec.Struct):
    """The run started to train the model, and what it trains on."""

    run_id: int
    pipeline: Annotated[str, Meta(description="the saved pipeline", examples=["predict-churned"])]
    model: Annotated[str, Meta(description="the model it registers")]
    task: TaskKind
    task_plain: str
    dataset_version: int
    module: Annotated[str, Meta(description="the module that trains", examples=["tabular-learner"])]
    features: list[str]
    left_out: list[str]
    result: Annotated[str, Meta(description="the page of the run's result")]


def choice_from_json(data: TrainRequest) -> Choice:
    task = data.task or ""
    return Choice(data.target, "" if task == "auto" else task, tuple(data.exclude))


def decide(table: Any, choice: Choice) -> Task:
    """The task for the choice: the detected one, or the chosen one checked (TaskMismatch)."""
    if choice.task:
        return check_task(table, choice.target, choice.task, choice.exclude)  # type: ignore[arg-type]
    return detect_task(table, choice.target, choice.exclude)


def form_context(hub: Hub, project: str, dataset: str, choice: Choice | None) -> dict[str, Any]:
    """The form: columns with their roles, the task in words (or why there is none)."""
    ds = hub.datasets.open(project, dataset)
    table = ds.to_table()
    roles = column_roles(table)
    names = [c.name for c in roles]
    choice = choice or Choice(names[-1] if names else "")
    task, error = None, None
    try:
        task = decide(table, choice)
    except TaskMismatch as e:
        error = e.message
    return {
        "base": f"/projects/{project}/datasets/{dataset}",
        "version": ds.version,
        "rows": table.num_rows,
        "columns": [_column_view(c, choice) for c in roles],
        "choice": choice,
        "task": task,
        "error": error,
        "tasks": TASK_WORDS,
    }


def _column_view(c: Column, choice: Choice) -> dict[str, Any]:
    unused = c.role in UNUSED
    return {
        "name": c.name,
        "role": c.plain,
        "unused": unused,
        "target": c.name == choice.target,
        "used": not unused and c.name not in choice.exclude,
    }


def train(hub: Hub, who: Principal, project: str, dataset: str, choice: Choice) -> dict:
    """Detect or check the task, save the flow's pipeline and start it. Nothing is saved
    when the target does not fit."""
    version = hub.datasets.latest_version(project, dataset)
    task = decide(hub.datasets.open(project, dataset).to_table(), choice)
    plan = pipeline_for(dataset, task, set(hub.modules.list_modules("library")))
    plan = Plan(_free_name(hub, project, plan.name), plan.model_module, plan.spec, plan.summary)
    save_pipeline(hub, who, project, convert({"name": plan.name, **plan.spec}, PipelineSpec))
    run_id = start_run(hub, who, project, plan.name, None)
    return {
        "run_id": run_id,
        "pipeline": plan.name,
        "model": plan.name,
        "task": task.kind,
        "task_plain": task.plain,
        "dataset_version": version,
        "module": plan.model_module,
        "features": task.feature_names(),
        "left_out": [c.name for c in task.left_out],
        "result": f"/projects/{project}/runs/{run_id}/result",
    }


def _free_name(hub: Hub, project: str, name: str) -> str:
    """`name`, unless a pipeline of that name was written by someone else than this flow:
    then `name-2`, `name-3`, ..."""
    project_id = hub.projects.get(project).id
    taken = {p["name"]: p for p in hub.runs.pipelines(project_id)}
    candidate, n = name, 1
    while candidate in taken and not _made_by_flow(hub, project_id, candidate):
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _made_by_flow(hub: Hub, project_id: int, name: str) -> bool:
    try:
        spec = hub.runs.pipeline(project_id, name)["spec"]
    except NotFound:
        return False
    return str(spec.get("description", "")).startswith(MARK)


# API -----------------------------------------------------------------------------------------
@get(API, access="reporter")
def detect_api(
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    target: FromQuery[str],
    task: FromQuery[str] = "",
) -> TrainDetection:
    """The task `target` asks for on the latest version (or why there is none), in words."""
    ctx = form_context(hub, project, dataset, Choice(target, "" if task == "auto" else task))
    found: Task | None = ctx["task"]
    return TrainDetection(
        target=target,
        version=ctx["version"],
        task=found.kind if found else None,
        plain=found.plain if found else None,
        reason=found.reason if found else ctx["error"],
        features=found.feature_names() if found else [],
        left_out=[c.name for c in found.left_out] if found else [],
        columns=[ColumnRole(c["name"], c["role"], c["unused"]) for c in ctx["columns"]],
    )


@post(API, access="developer", status_code=201)
def train_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    dataset: FromPath[str],
    data: JSONBody[TrainRequest],
) -> TrainStarted:
    """Save and run the flow's pipeline: {"target", "task"?, "exclude"?} -> the run."""
    return TrainStarted(**train(hub, request.user, project, dataset, choice_from_json(data)))


# pages ---------------------------------------------------------------------------------------
@get(PAGE, access="reporter")
def form_partial(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str]
) -> Template:
    """The form, for the current choice (query fields as the form sends them)."""
    query = {k: request.query_params.getall(k) for k in request.query_params}
    data = {k: (v if k == "use" else v[-1]) for k, v in query.items()}
    names = hub.datasets.open(project, dataset).schema.names
    ctx = form_context(hub, project, dataset, choice_from_form(data, names) if data else None)
    return Template("_train_form.html", context=ctx)


@post(PAGE, access="developer")
async def train_page(request: HTMXRequest, project: FromPath[str], dataset: FromPath[str]) -> Any:
    import anyio

    form = await request.form()
    data = {k: (form.getall(k) if k == "use" else form.get(k)) for k in form}
    hub: Hub = request.app.state.hub

    def go() -> dict:
        names = hub.datasets.open(project, dataset).schema.names
        return train(hub, request.user, project, dataset, choice_from_form(data, names))

    result = await anyio.to_thread.run_sync(go)
    if request.htmx:
        return Response("", status_code=200, headers={"HX-Redirect": result["result"]})
    return Redirect(result["result"], status_code=303)


ROUTES = [detect_api, train_api, form_partial, train_page]
