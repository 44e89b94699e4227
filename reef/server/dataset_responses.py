"""What the dataset API answers (`reef.server.datasets`): one Struct per response body, so the
OpenAPI document describes each. The stores build these answers as dicts; `reef.server.shaped`
turns one into its Struct. A key that only some answers carry is `UNSET` when absent, so the
JSON leaves it out exactly as the dict did."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Meta, UnsetType

from reef.server.dataset_changes import Rule
from reef.store.projects import Project

Value = Any  # a cell: a string, number, boolean or null (dates as ISO strings, bytes as base64)


class ColumnType(msgspec.Struct):
    """A column and its Arrow type."""

    name: str
    type: Annotated[str, Meta(examples=["int64", "double", "string", "date32[day]", "bool"])]


class ProducedBy(msgspec.Struct):
    """The pipeline run step that published this version."""

    run: int
    step: str


class DatasetSummary(msgspec.Struct):
    """A dataset of the project, with its latest version."""

    name: str
    description: str | None
    created_by: str
    created_at: datetime
    latest: Annotated[int | None, Meta(description="the latest version (null: none yet)")]
    versions: Annotated[int, Meta(description="how many versions it has")]
    num_rows: Annotated[int | None, Meta(description="rows of the latest version")]


class RuleCheck(msgspec.Struct):
    """One rule checked on a version. `examples` are failing rows (or, for `unique`, the
    repeated values and their counts; for `drift_psi`, the drifted columns)."""

    rule: Annotated[
        dict[str, Any], Meta(examples=[{"type": "range", "column": "x", "min": 0, "max": 5}])
    ]
    name: Annotated[str, Meta(description="the rule in short", examples=["range(x, 0..5)"])]
    passed: bool
    failures: Annotated[int, Meta(description="rows (or values, columns) that break it")]
    examples: list[dict[str, Any]] | UnsetType = UNSET
    rows: Annotated[int | UnsetType, Meta(description="row_count: the rows counted")] = UNSET
    psi: Annotated[
        dict[str, float] | UnsetType, Meta(description="drift_psi: column -> stability index")
    ] = UNSET
    detail: str | UnsetType = UNSET


class DatasetValidation(msgspec.Struct):
    """The dataset's rules checked on one version."""

    version: int
    passed: bool
    checks: list[RuleCheck]
    checked_at: Annotated[
        datetime | UnsetType, Meta(description="when it was checked (stored results only)")
    ] = UNSET


class VersionMade(msgspec.Struct):
    """The version an upload or a change made; or, with `unchanged` true, the latest version
    when the data held its rows already (no new version: `detail` says so, and the fields of
    a new version are left out)."""

    dataset: str
    version: int
    num_rows: int
    columns: list[ColumnType]
    notes: Annotated[list[str], Meta(description="what the import adjusted, in words")]
    skipped: Annotated[int, Meta(description="rows the import left out")]
    unchanged: bool
    author: str | UnsetType = UNSET
    message: str | UnsetType = UNSET
    source: Annotated[
        str | UnsetType, Meta(description="the file or the change", examples=["homes.csv"])
    ] = UNSET
    produced_by: ProducedBy | UnsetType | None = UNSET
    validation: Annotated[
        DatasetValidation | UnsetType | None, Meta(description="the rules checked (null: no rules)")
    ] = UNSET
    detail: Annotated[str | UnsetType, Meta(examples=["unchanged, still version 3"])] = UNSET
    suggested_key: Annotated[
        str | UnsetType | None,
        Meta(description="uploads: a column that could be the key, when none is declared"),
    ] = UNSET


class ImportJobView(msgspec.Struct):
    """A background import (`?wait=false`): its progress and, when done, its version."""

    id: int
    project: str
    dataset: str
    filename: str
    bytes_total: int
    total_rows: int | None
    estimated: Annotated[bool, Meta(description="total_rows is an estimate (text formats)")]
    rows_done: int
    status: Literal["queued", "running", "done", "failed"]
    phase: Literal["importing", "checking", "done"]
    error: str | None
    result: Annotated[VersionMade | None, Meta(description="the version, once done")]
    started: Annotated[float, Meta(description="seconds since the epoch")]
    finished: float | None
    fraction: Annotated[float | None, Meta(description="0-1 done (null: unknown)")]


class ImportPreview(msgspec.Struct):
    """What an upload would import: the first rows as typed, and what was detected."""

    columns: list[ColumnType]
    column_types: Annotated[list[str], Meta(description="the types a column may be given")]
    shown_columns: Annotated[list[str], Meta(description="the columns of `rows` (no binary)")]
    rows: list[list[Value]]
    detected: Annotated[dict[str, str], Meta(examples=[{"delimiter": ";", "encoding": "utf-8"}])]
    notes: list[str]
    filename: str


class RunRead(msgspec.Struct):
    """A run (and its step) that read this version."""

    run_id: int
    pipeline: str | None
    run_name: str | None
    status: str
    created_at: datetime
    step: str


class _VersionRow(msgspec.Struct):
    version: int
    message: str
    author: str
    num_rows: int
    columns: list[ColumnType]
    source: str
    created_at: datetime
    produced_by: ProducedBy | None


class VersionListed(_VersionRow):
    """A version in the dataset's history."""

    tags: list[str]
    valid: Annotated[bool | None, Meta(description="passed its rules (null: not checked)")]
    runs: list[RunRead]


class VersionDetail(_VersionRow):
    """One version: who made it and why, its tags, its rules' result and the runs it fed."""

    dataset: str
    tags: list[str]
    validation: DatasetValidation | None
    runs: list[RunRead]


class DatasetDetail(msgspec.Struct):
    """A dataset: its versions (newest first), tags, key and rules."""

    project: Project
    dataset: str
    versions: list[VersionListed]
    latest: int
    columns: list[ColumnType]
    tags: Annotated[dict[str, int], Meta(description="tag -> version", examples=[{"gold": 3}])]
    key: Annotated[str | None, Meta(description="the column that names each row")]
    rules: list[Rule]


class DatasetRows(msgspec.Struct):
    """A page of a version's rows (each a list of values in `columns` order)."""

    project: str
    dataset: str
    version: int
    offset: int
    limit: int
    total: int
    columns: list[str]
    types: Annotated[dict[str, str], Meta(description="column -> Arrow type")]
    rows: list[list[Value]]


class HistogramBin(msgspec.Struct):
    low: float
    high: float
    count: int


class TopValue(msgspec.Struct):
    value: Value
    count: int


class ColumnProfile(msgspec.Struct):
    """A column's statistics: numbers get min, max, mean and a histogram; text and booleans
    their most frequent values; dates and times min and max; binary columns mean_bytes."""

    name: str
    type: str
    nulls: int
    distinct: Annotated[int | None, Meta(description="null for binary and other columns")]
    min: float | str | UnsetType | None = UNSET
    max: float | str | UnsetType | None = UNSET
    mean: float | UnsetType | None = UNSET
    histogram: list[HistogramBin] | UnsetType = UNSET
    top: list[TopValue] | UnsetType = UNSET
    mean_bytes: float | UnsetType | None = UNSET


class DatasetProfile(msgspec.Struct):
    """Per-column statistics of one version."""

    version: int
    rows: int
    columns: list[ColumnProfile]


class SchemaChanges(msgspec.Struct):
    added: Annotated[list[list[str]], Meta(description="[name, type]")]
    removed: Annotated[list[list[str]], Meta(description="[name, type]")]
    renamed: Annotated[list[list[str]], Meta(description="[old name, new name]")]
    retyped: Annotated[list[list[str]], Meta(description="[name, old type, new type]")]


class DiffCounts(msgspec.Struct):
    added: int
    removed: int
    modified: int


class CellChange(msgspec.Struct):
    old: Value
    new: Value


class DiffRow(msgspec.Struct):
    """A changed row: its values (the old ones when removed) and, when modified, the cells
    that changed."""

    row_id: int
    change: Literal["added", "removed", "modified"]
    values: dict[str, Value]
    cells: dict[str, CellChange] | UnsetType = UNSET


class DatasetDiff(msgspec.Struct):
    """What changed from version `from` to version `to`, with a page of the changed rows."""

    dataset: str
    from_: int = msgspec.field(name="from")
    to: int
    schema: SchemaChanges
    counts: DiffCounts
    columns: list[str]
    offset: int
    limit: int
    rows: list[DiffRow]
    from_v: int
    to_v: int


class QueryResult(msgspec.Struct):
    """The rows of a query (up to `limit`; `truncated` when there were more)."""

    dataset: str
    version: int
    sql: str
    columns: list[str]
    rows: list[list[Value]]
    truncated: bool
    limit: int
    tables: Annotated[
        dict[str, int], Meta(description="each dataset the query read -> its version")
    ]


class DatasetTag(msgspec.Struct):
    tag: str
    version: int


class DatasetRules(msgspec.Struct):
    """The dataset's new rules and their result on the latest version."""

    rules: list[Rule]
    validation: DatasetValidation | None


def _spec(kind: Any, description: str) -> ResponseSpec:
    return ResponseSpec(kind, description=description, generate_examples=False)


MADE = {  # the answers of an upload or a change
    201: _spec(VersionMade, "the new version"),
    200: _spec(VersionMade, "the data held the latest version's rows: no new version"),
}
STARTED = {202: _spec(ImportJobView, "with ?wait=false: the import job to poll")}
