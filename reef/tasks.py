"""The task detector: what kind of model a target column asks for, decided from the data.

One function, shared by the "Train a model" flow and the planner, so the page and the run
can never disagree. It is pure (a pyarrow table in, a `Task` out) and imports nothing from
the server or the stores.

The rule, in order (documented in docs/models.md, "Tasks"):

1. Each column gets a role from its type and values:
   - `image`: a binary column (image datasets keep the encoded file there);
   - `boolean`, `date`, `number`: from the Arrow type;
   - `text`: strings whose non-empty values have a median of at least 4 words or 30 characters;
   - `identifier`: strings (or integers named like `id`) unique on every row, with no spaces;
   - `category`: every other string column;
   - `empty`: no value at all, or one value on every row (nothing to learn from).
2. The target decides the task:
   - no value, or a single value: refused (nothing to learn);
   - numbers with a fractional part, or whole numbers with more than `MAX_CLASSES` distinct
     values or distinct on more than half the rows: **regression** ("predict a number");
   - otherwise (booleans, words, a few whole numbers): classification, refused when the
     target has as many distinct values as rows. With an image feature it is **image
     classification**, with a text feature **text classification**, else
     **classification** (2 groups: binary; more: multiclass).
3. A task the person chose instead is checked against the same facts (`check_task`): groups
   need a target with repeated values, a number to predict needs numbers.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from reef.errors import InvalidInput

TaskKind = Literal["classification", "regression", "text_classification", "image_classification"]
Role = Literal["number", "boolean", "date", "category", "text", "image", "identifier", "empty"]

KINDS: tuple[TaskKind, ...] = (
    "classification",
    "regression",
    "text_classification",
    "image_classification",
)
MAX_CLASSES = 50  # whole-number targets with more distinct values are numbers to predict
TEXT_WORDS = 4  # median words of a value from which a string column is free text
TEXT_CHARS = 30  # ... or median characters
ID_NAME = re.compile(r"(^|_)(id|key|uuid|guid)$", re.IGNORECASE)


class TaskMismatch(InvalidInput):
    """The target column does not fit the task (chosen or detected)."""


@dataclass(frozen=True)
class Column:
    """One column of the table, with the role the detector gave it."""

    name: str
    role: Role
    type: str  # the Arrow type, as text
    distinct: int
    missing: int

    @property
    def plain(self) -> str:
        """The role in words a domain expert reads."""
        return ROLE_WORDS[self.role]


ROLE_WORDS: dict[str, str] = {
    "number": "a number",
    "boolean": "yes or no",
    "date": "a date",
    "category": "one of a few values",
    "text": "free text",
    "image": "an image",
    "identifier": "an identifier (different on every row, not used)",
    "empty": "empty or always the same (not used)",
}


@dataclass(frozen=True)
class Task:
    """The detected (or checked) task for one target column."""

    kind: TaskKind
    target: str
    rows: int
    classes: tuple[str, ...]  # sorted class names as text; empty for regression
    features: tuple[Column, ...]  # the columns a model learns from
    left_out: tuple[Column, ...]  # columns not used (identifiers, empty, excluded by the person)
    reason: str  # why this task, in plain words
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        return self.kind != "regression" and len(self.classes) == 2

    @property
    def plain(self) -> str:
        """The task in plain words: "sort rows into 2 groups", "predict a number"."""
        if self.kind == "regression":
            return "predict a number"
        things = {"text_classification": "texts", "image_classification": "images"}
        return f"sort {things.get(self.kind, 'rows')} into {len(self.classes)} groups"

    def feature_names(self, role: Role | None = None) -> list[str]:
        return [c.name for c in self.features if role is None or c.role == role]


def column_roles(table: pa.Table) -> list[Column]:
    """The role of every column of `table` (rule 1 of the module docstring)."""
    return [_column(name, table.column(name), table.num_rows) for name in table.column_names]


def detect_task(table: pa.Table, target: str, exclude: Iterable[str] = ()) -> Task:
    """The task `target` asks for, or `TaskMismatch` saying why there is none."""
    columns = _columns_or_refuse(table, target)
    kind, reason = _kind_for(columns[target], table, columns)
    return _task(kind, reason, table, target, columns, exclude)


def check_task(table: pa.Table, target: str, kind: TaskKind, exclude: Iterable[str] = ()) -> Task:
    """The task `kind` on `target`, or `TaskMismatch` if the target does not fit it."""
    if kind not in KINDS:
        raise TaskMismatch(f"unknown task {kind!r}; choose one of {', '.join(KINDS)}")
    columns = _columns_or_refuse(table, target)
    col = columns[target]
    if kind == "regression":
        if col.role != "number":
            raise TaskMismatch(
                f"{target!r} holds {col.plain}, not numbers: a number to predict needs a "
                "numeric column"
            )
        reason = f"{target!r} holds numbers ({col.distinct} distinct values)"
    else:
        _refuse_as_groups(col, table)
        reason = f"{target!r} has {col.distinct} distinct values, each repeated"
        if kind == "text_classification" and not _has(columns, target, exclude, "text"):
            raise TaskMismatch("sorting texts needs a column of free text among the features")
        if kind == "image_classification" and not _has(columns, target, exclude, "image"):
            raise TaskMismatch("sorting images needs an image column among the features")
    return _task(kind, reason, table, target, columns, exclude)


def _columns_or_refuse(table: pa.Table, target: str) -> dict[str, Column]:
    if table.num_rows == 0:
        raise TaskMismatch("the dataset has no rows: there is nothing to learn from")
    if target not in table.column_names:
        raise TaskMismatch(
            f"there is no column {target!r}; the columns are {', '.join(table.column_names)}"
        )
    columns = {c.name: c for c in column_roles(table)}
    col = columns[target]
    if col.missing == table.num_rows:
        raise TaskMismatch(f"{target!r} is empty on every row: there is nothing to learn")
    if col.distinct < 2:
        only = _first_value(table.column(target))
        raise TaskMismatch(
            f"{target!r} has the single value {only!r} on every row: a model needs at "
            "least two different values to learn from"
        )
    return columns


def _kind_for(col: Column, table: pa.Table, columns: dict[str, Column]) -> tuple[TaskKind, str]:
    n = table.num_rows
    if col.role == "number":
        fractional = _has_fraction(table.column(col.name))
        if fractional or col.distinct > MAX_CLASSES or col.distinct * 2 > n:
            why = "has fractions" if fractional else f"has {col.distinct} distinct values"
            return "regression", f"{col.name!r} {why} in {n} rows: a number to predict"
    _refuse_as_groups(col, table)
    roles = {c.role for name, c in columns.items() if name != col.name}
    reason = f"{col.name!r} has {col.distinct} distinct values in {n} rows: groups"
    if "image" in roles:
        return "image_classification", reason
    if "text" in roles:
        return "text_classification", reason
    return "classification", reason


def _refuse_as_groups(col: Column, table: pa.Table) -> None:
    n = table.num_rows
    many = col.distinct > MAX_CLASSES or col.distinct * 2 > n
    if col.role == "number" and (many or _has_fraction(table.column(col.name))):
        raise TaskMismatch(
            f"{col.name!r} has {col.distinct} distinct numbers in {n} rows: this looks like "
            "a number to predict, not groups"
        )
    if col.distinct >= n - col.missing:
        raise TaskMismatch(
            f"{col.name!r} has a different value on each of its {n - col.missing} rows: "
            "groups need values that repeat"
        )
    if col.role in ("text", "image", "date"):
        raise TaskMismatch(f"{col.name!r} holds {col.plain}: it cannot be sorted into groups")


def _task(
    kind: TaskKind,
    reason: str,
    table: pa.Table,
    target: str,
    columns: dict[str, Column],
    exclude: Iterable[str],
) -> Task:
    excluded = set(exclude)
    unknown = excluded - set(columns)
    if unknown:
        raise TaskMismatch(f"cannot leave out {sorted(unknown)}: no such column")
    features, left_out = [], []
    for name, c in columns.items():
        if name == target:
            continue
        usable = name not in excluded and c.role not in ("identifier", "empty")
        (features if usable else left_out).append(c)
    if not features:
        raise TaskMismatch(f"no column is left to learn {target!r} from")
    counts: dict[str, int] = {}
    if kind != "regression":
        vc = pc.value_counts(table.column(target).drop_null())
        counts = {class_name(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
    return Task(
        kind=kind,
        target=target,
        rows=table.num_rows,
        classes=tuple(sorted(counts)),
        features=tuple(features),
        left_out=tuple(left_out),
        reason=reason,
        class_counts=counts,
    )


def _has(columns: dict[str, Column], target: str, exclude: Iterable[str], role: Role) -> bool:
    excluded = set(exclude)
    return any(c.role == role for n, c in columns.items() if n != target and n not in excluded)


def _column(name: str, array: pa.ChunkedArray, rows: int) -> Column:
    t = array.type
    missing = array.null_count
    values = array.drop_null()
    distinct = len(pc.unique(values)) if len(values) else 0
    role = _role(name, t, values, distinct, rows, missing)
    return Column(name=name, role=role, type=str(t), distinct=distinct, missing=missing)


def _role(
    name: str, t: pa.DataType, values: pa.ChunkedArray, distinct: int, rows: int, missing: int
) -> Role:
    if distinct == 0 or (distinct == 1 and missing == 0 and rows > 1):
        return "empty"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "image"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_temporal(t):
        return "date"
    if pa.types.is_integer(t) and ID_NAME.search(name) and distinct == rows:
        return "identifier"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return _string_role(values.cast(pa.string()), distinct, rows)
    return "category"


def _string_role(values: pa.ChunkedArray, distinct: int, rows: int) -> Role:
    sample = [v for v in values.slice(0, 2000).to_pylist() if v]
    if not sample:
        return "empty"
    if statistics.median(len(v.split()) for v in sample) >= TEXT_WORDS:
        return "text"
    if statistics.median(len(v) for v in sample) >= TEXT_CHARS:
        return "text"
    if distinct == rows and rows > 1 and not any(" " in v for v in sample):
        return "identifier"
    return "category"


def _has_fraction(array: pa.ChunkedArray) -> bool:
    if not pa.types.is_floating(array.type) and not pa.types.is_decimal(array.type):
        return False
    values = array.drop_null().cast(pa.float64())
    if len(values) == 0:
        return False
    return bool(pc.any(pc.not_equal(values, pc.floor(values))).as_py())


def _first_value(array: pa.ChunkedArray) -> object:
    values = array.drop_null()
    return values[0].as_py() if len(values) else None


def class_name(value: object) -> str:
    """A class name as text: whole floats lose their '.0' so 1.0 and 1 name one class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
