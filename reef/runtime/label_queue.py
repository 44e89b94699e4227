"""What a person labels next: their rows in queue order (least-confident first when a served
model of the project can score them), narrowed by a filter, one item at a time with the
model's suggestion, their own draft, the others' answers and the reviewer's decision.

Model-assisted labeling goes through reef's own serving code: the serving version of a model
whose inputs are columns of the dataset and that names classes (`Predictor.run_inputs` gives
its class probabilities, i.e. predict_proba).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.runtime.labeling import FILTERS, UNSURE, Task, cell_values, check_row, scope
from reef.store.dataset_changes import ROW_ADDR, rows_by_id
from reef.store.people import Principal

log = logging.getLogger("reef.labeling")
MAX_SCORED = 5000  # rows scored for the order; the rest follow in row order
SHOWN_TEXT = 4000  # characters of one field shown on an item


@dataclass(frozen=True)
class Suggestions:
    """A model's guess (label, confidence 0..1) for rows it could score."""

    model: str | None
    guesses: dict[int, tuple[str, float]]


@dataclass(frozen=True)
class Served:
    """The serving version of a model that can suggest labels."""

    name: str
    model_id: int
    version: int
    predictor: Any


def suggest(hub: Hub, t: Task, rows: list[int]) -> Suggestions:
    found = model_for(hub, t) if rows else None
    if found is None:
        return Suggestions(None, {})
    name, predictor = found.name, found.predictor
    table = rows_by_id(hub.datasets.open(t.project, t.dataset), rows[:MAX_SCORED])
    try:
        y = predictor.run_inputs(predictor.table_inputs(table.select(predictor.columns)))
    except Exception:  # rows the model cannot read get no suggestion
        log.warning("model %r cannot score rows of %s", name, t.dataset, exc_info=True)
        return Suggestions(None, {})
    labels = predictor.labels(y) or []
    sure = np.max(y, axis=1).tolist() if len(y) else []
    ids = table["_rowid"].to_pylist()
    guesses = {r: (str(label), float(p)) for r, label, p in zip(ids, labels, sure, strict=True)}
    return Suggestions(name, guesses)


def model_for(hub: Hub, t: Task) -> Served | None:
    """The first served classifier of the project that reads only columns of the dataset
    (not the label column) and predicts labels of the label set."""
    columns = set(dict(hub.datasets.info(t.project, t.dataset).columns)) - {t.column}
    for model in hub.models.list(t.project_id):
        try:
            model_id = hub.model_service.model_id(t.project, model["name"])
            version = hub.models.serving_version(model_id)
            if version is None:
                continue
            predictor = hub.model_service.predictor(model_id, version)
        except Exception:  # a model that cannot load suggests nothing
            log.warning("model %r cannot suggest labels", model["name"], exc_info=True)
            continue
        classes = set(map(str, predictor.classes or []))
        if classes and classes <= set(t.labels) and set(predictor.columns) <= columns:
            return Served(model["name"], model_id, version, predictor)
    return None


@dataclass(frozen=True)
class Queue:
    """A person's rows in queue order, and those the filter keeps."""

    order: list[int]
    kept: list[int]
    mine: dict[int, str]
    suggestions: Suggestions


def queue(hub: Hub, t: Task, who: Principal, filter: str) -> Queue:
    if filter not in FILTERS:
        raise InvalidInput(f"unknown filter {filter!r}: use one of {', '.join(FILTERS)}")
    rows = scope(hub, t, who)
    votes = hub.annotations.votes(t.dataset_id, t.column)
    mine = {r: by[who.name] for r, by in votes.items() if who.name in by}
    cells = cell_values(hub, t)
    todo = [r for r in rows if r not in mine and cells.get(r) is None]
    unlabelled = set(todo)
    hints = suggest(hub, t, todo)
    if hints.guesses:  # least confident first; what the model could not score after
        rank = {r: hints.guesses[r][1] if r in hints.guesses else 2.0 for r in rows}
        rows = sorted(rows, key=lambda r: (r not in unlabelled, rank[r], r))
    decided = hub.annotations.decisions(t.dataset_id, t.column)
    keep = {
        "todo": unlabelled,
        "all": set(rows),
        "disagreements": {r for r, by in votes.items()
                          if len(set(by.values())) > 1 and r not in decided},
        "uncertain": {r for r in todo if r in hints.guesses and hints.guesses[r][1] < UNSURE},
    }[filter]  # fmt: skip
    return Queue(rows, [r for r in rows if r in keep], mine, hints)


def following(q: Queue, after: int | None, skip_current: bool) -> int | None:
    """The kept row after `after` in queue order (wrapping around), or the first kept row."""
    if not q.kept:
        return None
    if after is None or after not in q.order:
        return q.kept[0]
    at = q.order.index(after)
    ring = q.order[at + 1 :] + q.order[: at + (0 if skip_current else 1)]
    kept = set(q.kept)
    return next((r for r in ring if r in kept), None)


def neighbours(q: Queue, row_id: int, filter: str) -> tuple[int | None, int | None]:
    """Previous and next rows for the arrows: every row of the person's queue while going
    through unlabelled ones (to look back at earlier answers), else the filtered rows."""
    walk = q.order if filter in ("todo", "all") else [r for r in q.order if r in q.kept]
    if row_id not in walk:
        walk = sorted({*walk, row_id}, key=q.order.index) if row_id in q.order else walk
    if row_id not in walk:
        return None, None
    i = walk.index(row_id)
    return (walk[i - 1] if i > 0 else None), (walk[i + 1] if i + 1 < len(walk) else None)


def item(hub: Hub, t: Task, who: Principal, q: Queue, row_id: int, filter: str) -> dict:
    """One row to label: its fields (an image column as an image), the answers so far."""
    check_row(hub, t, row_id)
    table = rows_by_id(hub.datasets.open(t.project, t.dataset), [row_id])
    fields, image = [], None
    for name in table.column_names:
        if name in ("_rowid", ROW_ADDR, t.column):
            continue
        kind = table.schema.field(name).type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            image = image or name
            continue
        value = table[name][0].as_py()
        fields.append({"name": name, "value": "" if value is None else str(value)[:SHOWN_TEXT]})
    votes = hub.annotations.votes(t.dataset_id, t.column).get(row_id, {})
    prev, nxt = neighbours(q, row_id, filter)
    guess = q.suggestions.guesses.get(row_id)
    return {
        "row": row_id,
        "fields": fields,
        "image": image,
        "current": table[t.column][0].as_py(),
        "mine": q.mine.get(row_id),
        "others": {a: v for a, v in votes.items() if a != who.name},
        "decision": hub.annotations.decisions(t.dataset_id, t.column).get(row_id),
        "suggestion": {"label": guess[0], "confidence": guess[1], "model": q.suggestions.model}
        if guess
        else None,
        "previous": prev,
        "next": nxt,
    }


def progress(q: Queue) -> dict:
    done = sum(1 for r in q.order if r in q.mine)
    total = len(q.order)
    return {"done": done, "total": total, "percent": round(100 * done / total) if total else 100}
