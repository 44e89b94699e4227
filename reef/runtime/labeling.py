"""Labeling a dataset: the label set, who labels which rows, the queue of items a person
sees, drafts, the reviewer's decisions, and publishing the agreed labels as ONE new dataset
version (through `update_rows`, so row ids stay and the diff shows the changed labels only).

A row's agreed label is the reviewer's decision when there is one, else the label more than
half of its annotators chose once as many as were asked have answered (reef.runtime.agreement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from reef.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from reef.hub import Hub
from reef.runtime import agreement
from reef.runtime.dataset_versions import new_version
from reef.store.people import Principal
from reef.store.projects import rank

MAX_LABELS = 50
FILTERS = {
    "todo": "not labelled yet",
    "all": "every row",
    "disagreements": "annotators disagree",
    "uncertain": "the model is unsure",
}
UNSURE = 0.6  # a suggestion below this confidence counts as "the model is unsure"


@dataclass(frozen=True)
class Task:
    """One label column of a dataset, at its latest version."""

    project: str
    dataset: str
    column: str
    project_id: int
    dataset_id: int
    labels: list[str]
    version: int


def task(hub: Hub, project: str, dataset: str, column: str) -> Task:
    project_id, dataset_id = dataset_ids(hub, project, dataset)
    labels = hub.annotations.label_set(dataset_id, column)
    if labels is None:
        raise NotFound(
            f"column {column!r} of dataset {dataset!r} has no label set: choose the label "
            "column and its labels first"
        )
    info = hub.datasets.info(project, dataset)
    if column not in dict(info.columns):
        raise NotFound(
            f"the label column {column!r} is no longer in dataset {dataset!r} (renamed or "
            "dropped): choose the label column again"
        )
    version = info.version
    return Task(project, dataset, column, project_id, dataset_id, labels, version)


def dataset_ids(hub: Hub, project: str, dataset: str) -> tuple[int, int]:
    project_id = hub.projects.get(project).id
    try:
        return project_id, hub.catalog.dataset_id(project_id, dataset)
    except NotFound:
        raise NotFound(f"dataset '{dataset}' not found in project '{project}'") from None


def check_labels(labels: Any) -> list[str]:
    """The label set as a list of distinct, non-empty texts (InvalidInput saying why not)."""
    if isinstance(labels, str):
        labels = labels.replace("\n", ",").split(",")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InvalidInput('\'labels\' must be a list of texts, e.g. ["spam", "not spam"]')
    labels = [x.strip() for x in labels if x.strip()]
    if not 2 <= len(labels) <= MAX_LABELS:
        raise InvalidInput(f"a label set has 2 to {MAX_LABELS} labels, not {len(labels)}")
    if len(set(labels)) != len(labels):
        raise InvalidInput("each label may appear only once in the label set")
    if too_long := [x for x in labels if len(x) > 100]:
        raise InvalidInput(f"labels are at most 100 characters: {too_long[0][:40]!r}…")
    return labels


def create_label_set(
    hub: Hub, who: Principal, project: str, dataset: str, column: str, labels: Any
) -> dict:
    """Keep the label set of `column`; a new column is added (empty, text) as one version."""
    _, dataset_id = dataset_ids(hub, project, dataset)
    labels = check_labels(labels)
    column = column.strip() if isinstance(column, str) else ""
    if not column:
        raise InvalidInput("name the label column (a new or an existing one)")
    info = hub.datasets.info(project, dataset)
    if column not in dict(info.columns):
        info = hub.datasets.add_column(project, dataset, column, "string", None)
        new_version(hub, who.name, project, dataset, info, f"add label column {column}",
                    source=f"add column {column} (string)")  # fmt: skip
    hub.annotations.save_label_set(dataset_id, column, labels, who.name)
    hub.audit.record(who.name, "labels.set", f"dataset {dataset}", project, column=column)
    return {"column": column, "labels": labels, "version": info.version}


# --- who labels what ---------------------------------------------------------------------------


def scope(hub: Hub, t: Task, who: Principal) -> list[int]:
    """The rows `who` is to label: those assigned to them, or every row when nobody has been
    assigned any (then labeling needs the developer role)."""
    assigned = hub.annotations.assignments(t.dataset_id, t.column)
    live = hub.datasets.row_ids(t.project, t.dataset)
    if not assigned:
        return live if _may_label_all(hub, t, who) else []
    mine = {r for r, people in assigned.items() if who.name in people}
    return [r for r in live if r in mine]


def _may_label_all(hub: Hub, t: Task, who: Principal) -> bool:
    return rank(hub.projects.role_of(t.project, who)) >= rank("developer")


def check_may_label(hub: Hub, t: Task, who: Principal, row_id: int) -> None:
    assigned = hub.annotations.assignments(t.dataset_id, t.column)
    if assigned:
        if who.name not in assigned.get(row_id, []):
            raise PermissionDenied(
                f"row {row_id} is not assigned to you: ask a maintainer to assign it"
            )
    elif not _may_label_all(hub, t, who):
        raise PermissionDenied("labeling needs the developer role or rows assigned to you")


def assign(
    hub: Hub, who: Principal, t: Task, annotators: list[str], per_row: int,
    share: float | None = None, where: str | None = None,
) -> dict:  # fmt: skip
    """Ask `annotators` to label rows (all, the first `share` of them, or those matching the
    predicate `where`), `per_row` annotators each, in turn."""
    members = {m["user"] for m in hub.projects.members(t.project)}
    annotators = list(dict.fromkeys(annotators))
    if not annotators:
        raise InvalidInput("name at least one annotator")
    if unknown := [a for a in annotators if a not in members]:
        raise InvalidInput(f"not members of project '{t.project}': {', '.join(unknown)}")
    if not 1 <= per_row <= len(annotators):
        raise InvalidInput(f"annotators per row must be 1 to {len(annotators)}, not {per_row}")
    if share is not None and not 0 < share <= 1:
        raise InvalidInput(f"the share of rows must be above 0 and at most 1, not {share}")
    rows = hub.datasets.row_ids(t.project, t.dataset, where=where or None)
    if share is not None:
        rows = rows[: math.ceil(len(rows) * share)]
    if not rows:
        raise InvalidInput("no rows to assign: the filter matches none")
    n = len(annotators)
    pairs = [(r, annotators[(i + j) % n]) for i, r in enumerate(rows) for j in range(per_row)]
    made = hub.annotations.assign(t.dataset_id, t.column, pairs, who.name)
    hub.audit.record(who.name, "labels.assign", f"dataset {t.dataset}", t.project,
                     column=t.column, rows=len(rows), annotators=annotators)  # fmt: skip
    for person in annotators:
        mine = sum(1 for _, a in pairs if a == person)
        text = f"asked you to label {mine} rows of {t.dataset} (column {t.column})"
        hub.inbox.notify([person], "labeling", t.project,
                         ("dataset", f"{t.dataset}@{t.version}"), who.name, text)  # fmt: skip
    return {"rows": len(rows), "assignments": made, "annotators": annotators}


# --- drafts and decisions ----------------------------------------------------------------------


def check_label(t: Task, label: Any) -> str:
    if not isinstance(label, str) or label not in t.labels:
        raise InvalidInput(
            f"label {label!r} is not in the label set of {t.column}: {', '.join(t.labels)}"
        )
    return label


def check_row(hub: Hub, t: Task, row_id: int) -> None:
    if row_id not in set(hub.datasets.row_ids(t.project, t.dataset)):
        raise InvalidInput(f"no row with row id {row_id} in version {t.version}")


def save(hub: Hub, who: Principal, t: Task, row_id: int, label: Any) -> None:
    """Keep `who`'s draft label of a row (replacing their earlier one)."""
    label = check_label(t, label)
    check_row(hub, t, row_id)
    check_may_label(hub, t, who, row_id)
    hub.annotations.annotate(t.dataset_id, t.column, row_id, who.name, label, t.version)


def undo(hub: Hub, who: Principal, t: Task) -> int | None:
    """Take back `who`'s latest draft; the row it was on (None when there was none)."""
    row_id = hub.annotations.last_by(t.dataset_id, t.column, who.name)
    if row_id is not None:
        hub.annotations.remove(t.dataset_id, t.column, row_id, who.name)
    return row_id


def resolve(hub: Hub, who: Principal, t: Task, row_id: int, label: Any) -> dict:
    """The reviewer's decision for a row; it is the row's published label from now on."""
    label = check_label(t, label)
    check_row(hub, t, row_id)
    hub.annotations.decide(t.dataset_id, t.column, row_id, label, who.name)
    hub.audit.record(who.name, "labels.resolve", f"dataset {t.dataset}", t.project,
                     column=t.column, row=row_id, label=label)  # fmt: skip
    return {"row": row_id, "label": label, "reviewer": who.name}


@dataclass(frozen=True)
class Outcome:
    """Where the drafts stand: the agreed label of each row, and the rows without one."""

    agreed: dict[int, str]
    disputed: list[int]  # annotators disagree and no reviewer decided
    waiting: list[int]  # fewer answers than annotators asked


def outcome(hub: Hub, t: Task) -> Outcome:
    votes = hub.annotations.votes(t.dataset_id, t.column)
    decided = hub.annotations.decisions(t.dataset_id, t.column)
    assigned = hub.annotations.assignments(t.dataset_id, t.column)
    chosen, disputed, waiting = {r: d["label"] for r, d in decided.items()}, [], []
    for row_id, by in votes.items():
        if row_id in chosen:
            continue
        labels = list(by.values())
        label = agreed_label(labels, len(assigned.get(row_id, [])) or 1)
        if label is not None:
            chosen[row_id] = label
        elif len(set(labels)) > 1:
            disputed.append(row_id)
        else:
            waiting.append(row_id)
    return Outcome(chosen, disputed, waiting)


def agreed_label(labels: list[str], needed: int) -> str | None:
    return agreement.agreed(labels, needed)


def disagreements(hub: Hub, t: Task) -> list[int]:
    """Rows whose annotators chose different labels and that no reviewer decided yet."""
    votes = hub.annotations.votes(t.dataset_id, t.column)
    decided = hub.annotations.decisions(t.dataset_id, t.column)
    return [r for r, by in votes.items() if len(set(by.values())) > 1 and r not in decided]


def publish(hub: Hub, who: Principal, t: Task, message: str | None) -> dict:
    """Write the agreed labels that differ from the latest version as ONE new version."""
    if hub.annotations.review_required(t.project_id) and (open_rows := disagreements(hub, t)):
        raise Conflict(
            f"{len(open_rows)} rows have unresolved disagreements (row ids "
            f"{', '.join(map(str, open_rows[:10]))}) and this project needs labels reviewed "
            "before publishing: resolve them in the review queue first"
        )
    current = cell_values(hub, t)
    agreed = outcome(hub, t).agreed
    changed = [{"_rowid": r, t.column: label} for r, label in sorted(agreed.items())
               if r in current and current[r] != label]  # fmt: skip
    if not changed:
        raise InvalidInput("nothing to publish: no agreed label differs from the dataset yet")
    info = hub.datasets.update_rows(t.project, t.dataset, changed)
    message = message or f"publish {len(changed)} labels of {t.column}"
    result = new_version(hub, who.name, t.project, t.dataset, info, message,
                         source=f"labels of {t.column}")  # fmt: skip
    return {**result, "labels": len(changed)}


def cell_values(hub: Hub, t: Task) -> dict[int, Any]:
    """row id -> the label column's value in the latest version (as text, or None)."""
    table = hub.datasets.open(t.project, t.dataset).to_table(columns=[t.column], with_row_id=True)
    values = table[t.column]
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    return dict(zip(table["_rowid"].to_pylist(), values.to_pylist(), strict=True))


def review_setting(hub: Hub, who: Principal, project: str, required: bool) -> dict:
    project_id = hub.projects.get(project).id
    hub.annotations.set_review_required(project_id, required)
    hub.audit.record(who.name, "labels.review_required", f"project {project}", project,
                     required=required)  # fmt: skip
    return {"review_required": required}
