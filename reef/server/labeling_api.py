"""Labeling over HTTP, the JSON API (docs/api.md, docs/datasets.md "Labeling"): label sets,
items to label, draft labels, assignments, the review queue and decisions, agreement,
publishing, and retraining the model that suggests labels. The logic lives in
`reef.runtime.labeling` and `reef.runtime.label_queue`; the pages are `reef.server.labeling`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from msgspec import Meta

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.runtime import agreement, label_queue, labeling
from reef.server.pipelines import start_run
from reef.server.routes import FromPath, FromQuery, HubDep, JSONBody, get, post, put
from reef.store.people import Principal

API = "/api/projects/{project:str}/datasets/{dataset:str}/labeling"
COLUMN = API + "/{column:str}"


def provide_task(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str], column: FromPath[str]
) -> labeling.Task:
    """The label column named by the path (404 when it has no label set)."""
    return labeling.task(hub, project, dataset, column)


TASK = {"t": Provide(provide_task, sync_to_thread=True)}  # handlers take it as `t`
TaskDep = NamedDependency[labeling.Task]


class LabelSetIn(msgspec.Struct, forbid_unknown_fields=True):
    """`column`: a new column (added empty, as one version) or an existing one."""

    column: str
    labels: list[str]


class AnnotationIn(msgspec.Struct, forbid_unknown_fields=True):
    row: int  # the row id (`_rowid`)
    label: str


class AssignmentIn(msgspec.Struct, forbid_unknown_fields=True):
    """All rows, the first `share` (0-1) of them, or those matching `where` (a SQL
    condition), each given to `per_row` of the `annotators` in turn."""

    annotators: list[str]
    per_row: int = 1
    share: float | None = None
    where: str | None = None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    row: int
    label: str


class PublishIn(msgspec.Struct, forbid_unknown_fields=True):
    message: str | None = None


class ReviewSettingIn(msgspec.Struct, forbid_unknown_fields=True):
    review_required: bool


class LabelSetOut(msgspec.Struct):
    column: str
    labels: list[str]
    version: int


class AnnotationOut(msgspec.Struct):
    row: int
    label: str | None
    author: str


class AssignmentOut(msgspec.Struct):
    rows: int
    assignments: int
    annotators: list[str]


class ResolveOut(msgspec.Struct):
    row: int
    label: str
    reviewer: str


class PublishOut(msgspec.Struct):
    dataset: str
    version: int
    labels: int
    author: str
    message: str


class ReviewSettingOut(msgspec.Struct):
    review_required: bool


class RetrainOut(msgspec.Struct):
    run: int
    pipeline: str
    model: str


class LabelProgress(msgspec.Struct):
    """Your share of the queue: rows you labelled of the rows to label."""

    done: int
    total: int
    percent: int


class LabelItemField(msgspec.Struct):
    """A field of the row, as text (cut short when long)."""

    name: str
    value: str


class LabelDecision(msgspec.Struct):
    """A reviewer's decision on a row."""

    label: str
    reviewer: str
    at: datetime


class LabelSuggestion(msgspec.Struct):
    """The served model's guess."""

    label: str
    confidence: float
    model: str | None


class LabelItem(msgspec.Struct):
    """A row to label: its fields, your draft, the others' drafts, the decision and the
    model's guess, and its neighbours in the queue."""

    row: Annotated[int, Meta(description="the row id (`_rowid`)")]
    fields: list[LabelItemField]
    image: Annotated[str | None, Meta(description="the image column, if the row has one")]
    current: Annotated[Any, Meta(description="the label column's published value")]
    mine: Annotated[str | None, Meta(description="your draft label")]
    others: Annotated[dict[str, str], Meta(description="annotator -> draft label")]
    decision: LabelDecision | None
    suggestion: LabelSuggestion | None
    previous: int | None
    next: int | None


class LabelItems(msgspec.Struct):
    """Your next rows to label, in queue order."""

    labels: list[str]
    version: int
    progress: LabelProgress
    model: Annotated[str | None, Meta(description="the served model suggesting labels")]
    items: list[LabelItem]


class DisputedRow(msgspec.Struct):
    """A row whose annotators disagree."""

    row: int
    answers: Annotated[dict[str, str], Meta(description="annotator -> label")]


class DecidedRow(msgspec.Struct):
    row: int
    label: str
    reviewer: str
    at: datetime


class LabelReview(msgspec.Struct):
    """The reviewer's queue and the decisions made so far."""

    labels: list[str]
    open: list[DisputedRow]
    decisions: list[DecidedRow]


class LabelKappa(msgspec.Struct):
    label: str
    kappa: float | None
    words: str


class PairKappa(msgspec.Struct):
    """Cohen's kappa of two annotators over the rows both labelled."""

    a: str
    b: str
    rows: int
    same: int
    kappa: float | None
    words: str


class LabelAgreement(msgspec.Struct):
    """Agreement between annotators (kappa: 1 = always agree, 0 = no better than chance;
    null when there is not enough to tell), and where the rows stand."""

    rows: Annotated[int, Meta(description="rows labelled by two or more annotators")]
    agreeing: int
    kappa: Annotated[float | None, Meta(description="Fleiss' kappa overall")]
    words: Annotated[str, Meta(description="the kappa in words")]
    per_label: list[LabelKappa]
    pairs: list[PairKappa]
    labelled: Annotated[int, Meta(description="rows with a draft label")]
    agreed: int
    disputed: int
    waiting: int


@post(API, access="developer", status_code=201)
def label_set_api(
    request: Request, hub: HubDep, project: FromPath[str], dataset: FromPath[str],
    data: JSONBody[LabelSetIn],
) -> LabelSetOut:  # fmt: skip
    """Choose the label column and its labels (shortcut keys 1-9 follow their order)."""
    made = labeling.create_label_set(hub, request.user, project, dataset, data.column, data.labels)
    return LabelSetOut(**made)


LABEL_SETS = ResponseSpec(
    dict[str, list[str]],
    description="label column -> its labels, in order (shortcut keys 1-9 follow it)",
    examples=[Example(summary="one label set", value={"sentiment": ["pos", "neg"]})],
    generate_examples=False,
)


@get(API, access="reporter", responses={200: LABEL_SETS})
def label_sets_api(
    hub: HubDep, project: FromPath[str], dataset: FromPath[str]
) -> dict[str, list[str]]:
    """The label sets of the dataset: column -> labels."""
    _, dataset_id = labeling.dataset_ids(hub, project, dataset)
    return hub.annotations.label_sets(dataset_id)


@get(COLUMN + "/items", access="reporter", dependencies=TASK)
def items_api(
    request: Request, hub: HubDep, t: TaskDep, filter: FromQuery[str] = "todo",
    limit: FromQuery[int] = 20,
) -> LabelItems:  # fmt: skip
    """Your next rows to label (`filter`: todo, all, disagreements, uncertain) in queue
    order, each with its fields, your draft, the others' answers and the model's guess."""
    if not 1 <= limit <= 200:
        raise InvalidInput(f"limit must be 1 to 200, not {limit}")
    q = label_queue.queue(hub, t, request.user, filter)
    items = [label_queue.item(hub, t, request.user, q, r, filter) for r in q.kept[:limit]]
    found = {"labels": t.labels, "version": t.version, "progress": label_queue.progress(q),
             "model": q.suggestions.model, "items": items}  # fmt: skip
    return msgspec.convert(found, LabelItems)


@post(COLUMN + "/annotations", access="reporter", status_code=201, dependencies=TASK)
def annotate_api(
    request: Request, hub: HubDep, t: TaskDep, data: JSONBody[AnnotationIn]
) -> AnnotationOut:
    """Your draft label of a row (a row assigned to you, when rows are assigned)."""
    labeling.save(hub, request.user, t, data.row, data.label)
    return AnnotationOut(data.row, data.label, request.user.name)


@post(COLUMN + "/undo", access="reporter", status_code=200, dependencies=TASK)
def undo_api(request: Request, hub: HubDep, t: TaskDep) -> AnnotationOut:
    """Take back your latest draft label."""
    row = labeling.undo(hub, request.user, t)
    if row is None:
        raise InvalidInput("nothing to undo: you have no draft labels here")
    return AnnotationOut(row, None, request.user.name)


@post(COLUMN + "/assignments", access="maintainer", status_code=201, dependencies=TASK)
def assign_api(
    request: Request, hub: HubDep, data: JSONBody[AssignmentIn], t: TaskDep
) -> AssignmentOut:
    made = labeling.assign(hub, request.user, t, data.annotators, data.per_row, data.share,
                           data.where)  # fmt: skip
    return AssignmentOut(**made)


@get(COLUMN + "/review", access="reporter", dependencies=TASK)
def review_api(hub: HubDep, t: TaskDep) -> LabelReview:
    """The reviewer's queue: rows whose annotators disagree, with each one's answer; and the
    decisions made so far (who, when, which label)."""
    return msgspec.convert(review_listing(hub, t), LabelReview)


def review_listing(hub: Hub, t: labeling.Task) -> dict:
    votes = hub.annotations.votes(t.dataset_id, t.column)
    rows = [{"row": r, "answers": votes[r]} for r in labeling.disagreements(hub, t)]
    decided = hub.annotations.decisions(t.dataset_id, t.column)
    return {"labels": t.labels, "open": rows,
            "decisions": [{"row": r, **d} for r, d in decided.items()]}  # fmt: skip


@post(COLUMN + "/resolve", access="maintainer", status_code=201, dependencies=TASK)
def resolve_api(request: Request, hub: HubDep, data: JSONBody[ResolveIn], t: TaskDep) -> ResolveOut:
    return ResolveOut(**labeling.resolve(hub, request.user, t, data.row, data.label))


@get(COLUMN + "/agreement", access="reporter", dependencies=TASK)
def agreement_api(hub: HubDep, t: TaskDep) -> LabelAgreement:
    """Agreement between annotators: Cohen's kappa per pair, Fleiss' kappa overall and per
    label (1 = always agree, 0 = no better than chance)."""
    return msgspec.convert(agreement_of(hub, t), LabelAgreement)


def agreement_of(hub: Hub, t: labeling.Task) -> dict:
    votes = hub.annotations.votes(t.dataset_id, t.column)
    state = labeling.outcome(hub, t)
    return {**agreement.summary(votes, t.labels), "labelled": len(votes),
            "agreed": len(state.agreed), "disputed": len(state.disputed),
            "waiting": len(state.waiting)}  # fmt: skip


@post(COLUMN + "/publish", access="developer", status_code=201, dependencies=TASK)
def publish_api(request: Request, hub: HubDep, data: JSONBody[PublishIn], t: TaskDep) -> PublishOut:
    """The agreed labels as ONE new dataset version (409 while disagreements wait for review
    in a project that requires it; 400 when no label would change)."""
    made = labeling.publish(hub, request.user, t, data.message)
    return PublishOut(t.dataset, made["version"], made["labels"], made["author"], made["message"])


@post(COLUMN + "/retrain", access="developer", status_code=201, dependencies=TASK)
def retrain_api(request: Request, hub: HubDep, t: TaskDep) -> RetrainOut:
    """Run again the pipeline that made the model suggesting labels."""
    return retrain(hub, request.user, t)


def retrain(hub: Hub, who: Principal, t: labeling.Task) -> RetrainOut:
    served = label_queue.model_for(hub, t)
    if served is None:
        raise InvalidInput("no served model of this project suggests these labels")
    run_id = hub.models.version(served.model_id, served.version).get("run_id")
    pipeline = hub.runs.run(run_id).pipeline if run_id else None
    if not pipeline:
        raise InvalidInput(f"model {served.name!r} was not made by a saved pipeline")
    return RetrainOut(start_run(hub, who, t.project, pipeline, None), pipeline, served.name)


@put("/api/projects/{project:str}/labeling-settings", access="maintainer")
def review_setting_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[ReviewSettingIn]
) -> ReviewSettingOut:
    """Whether labels need a reviewer's decision on every disagreement before publishing."""
    labeling.review_setting(hub, request.user, project, data.review_required)
    return ReviewSettingOut(data.review_required)


ROUTES = [
    label_set_api,
    label_sets_api,
    items_api,
    annotate_api,
    undo_api,
    assign_api,
    review_api,
    resolve_api,
    agreement_api,
    publish_api,
    retrain_api,
    review_setting_api,
]
