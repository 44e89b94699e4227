"""What scripts, steps and workers send about a run: the request bodies of run creation,
metric points, parameters and the end of a run, as msgspec Structs (Litestar validates them
and documents them in the OpenAPI schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile

from reef.errors import InvalidInput
from reef.store.metric_ingest import COLUMNS

MAX_POINTS = 100_000
Params = Annotated[
    dict[str, Any],
    msgspec.Meta(description="parameter name -> value", examples=[{"lr": 0.01, "depth": 4}]),
]
StepName = Annotated[
    str | None,
    msgspec.Meta(description="the step that reports; null or absent: a script run"),
]


class NewRun(msgspec.Struct, forbid_unknown_fields=True):
    """With `module`: run that module as a one-step run (its `inputs`, `params` and an
    optional `register` model name). Without: a run that a script reports to (`name`,
    `params`)."""

    module: Annotated[
        str | None, msgspec.Meta(description="[PROJECT/]MODULE[@REV]", examples=["library/split"])
    ] = None
    name: Annotated[str | None, msgspec.Meta(examples=["notebook-try"])] = None
    params: Params = {}
    inputs: Annotated[
        dict[str, str],
        msgspec.Meta(description="input name -> reference", examples=[{"data": "dataset:iris"}]),
    ] = {}
    register: str | None = None


class MetricColumns(msgspec.Struct, forbid_unknown_fields=True):
    """Points as columns, one list per field, all as long as `key` (what the SDK sends)."""

    key: list[str]
    value: list[float | None]
    step: list[int | None] | None = None
    ts: Annotated[
        list[float | None] | None, msgspec.Meta(description="seconds since the epoch")
    ] = None


class MetricPoint(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    value: float | None = None
    step: int | None = None
    ts: float | None = None


COLUMNS_EXAMPLE = {"key": ["loss", "loss"], "value": [0.9, 0.7], "step": [0, 1]}


class MetricPost(msgspec.Struct, forbid_unknown_fields=True):
    """Metric points, as `columns` or as `points` (one object per point)."""

    step: StepName = None
    columns: Annotated[MetricColumns | None, msgspec.Meta(examples=[COLUMNS_EXAMPLE])] = None
    points: (
        Annotated[
            list[MetricPoint],
            msgspec.Meta(max_length=MAX_POINTS, examples=[[{"key": "loss", "value": 0.7}]]),
        ]
        | None
    ) = None


class RunEnd(MetricPost, forbid_unknown_fields=True):
    """A script run's end, with the last metric points the SDK still held."""

    status: Literal["succeeded", "failed"] = "succeeded"
    error: Annotated[str | None, msgspec.Meta(description="why it failed")] = None


class ParamsPost(msgspec.Struct, forbid_unknown_fields=True):
    params: Params
    step: StepName = None


@dataclass
class ArtifactUpload:
    """A file a run keeps (multipart): `name` defaults to the file's, `step` to script."""

    file: UploadFile
    name: str | None = None
    step: str | None = None


def metric_columns(post: MetricPost) -> dict[str, list]:
    """The post's points as the columns `RunStore.log_metric_columns` takes."""
    if post.columns is None and post.points is None:
        raise InvalidInput("send 'columns' (an object of lists) or 'points' (a list of objects)")
    if post.columns is not None:
        if len(post.columns.key) > MAX_POINTS:
            raise InvalidInput(f"columns.key: at most {MAX_POINTS} points per request")
        given = msgspec.structs.asdict(post.columns)
        return {k: v for k, v in given.items() if v is not None}
    points = post.points or []
    return {name: [getattr(p, name) for p in points] for name in COLUMNS}


def reported_step(post: MetricPost | ParamsPost, default: str) -> str:
    """The step a report is filed under (`default` when it names none)."""
    return default if post.step is None else post.step
