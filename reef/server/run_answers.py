"""What the run API answers, as typed bodies: the OpenAPI document describes each one, and a
handler builds it from the same rows the run page shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from reef.server.comments import Comment
from reef.server.rerun_diff import RerunDiff
from reef.store.projects import Project
from reef.store.runs import Run, Step

RunStatus = Annotated[
    str,
    msgspec.Meta(
        description="queued, running, succeeded, failed or cancelled",
        examples=["running"],
    ),
]


class RunCreated(msgspec.Struct, omit_defaults=True):
    """The new run; a script run also gets `heartbeat_s` (left out for a module run)."""

    id: int
    heartbeat_s: Annotated[
        float | None,
        msgspec.Meta(
            description="how often the script should POST .../heartbeat: a script run that "
            "stays silent much longer is ended as failed",
            examples=[60.0],
        ),
    ] = None


class RunId(msgspec.Struct):
    """The run that was started."""

    id: int


class CurrentStatus(msgspec.Struct):
    """The run's status now (a script learns this way that its run was ended)."""

    status: RunStatus


class RunState(msgspec.Struct):
    """A run and its status after the request."""

    id: int
    status: RunStatus


class Stored(msgspec.Struct):
    stored: Annotated[int, msgspec.Meta(description="how many points or params were stored")]


class ArtifactStored(msgspec.Struct):
    name: str
    digest: Annotated[str, msgspec.Meta(description="SHA-256 of the content")]
    size: Annotated[int, msgspec.Meta(description="bytes")]


class AllLogs(msgspec.Struct):
    """The last 64 kB of each step's log (no `step` asked)."""

    logs: Annotated[dict[str, str], msgspec.Meta(description="step name -> log text")]


class StepLog(msgspec.Struct):
    """One step's log from byte `offset` of the request; ask again from `offset` of the answer
    for what came since."""

    step: str
    text: str
    offset: Annotated[int, msgspec.Meta(description="the byte where this text ends")]


class RunRecord(msgspec.Struct):
    """Everything that went into a run: the pinned spec and each step's environment."""

    run: int
    project: str
    pipeline: str | None
    spec: Annotated[
        dict[str, Any], msgspec.Meta(description="the pipeline spec with commits pinned")
    ]
    created_by: str
    created_at: datetime
    steps: Annotated[
        list[dict[str, Any]],
        msgspec.Meta(
            description="each step's record (module, commit, params, inputs, seed, command, "
            "packages, host...), or {step, note} for a step that did not start"
        ),
    ]


class RunParam(msgspec.Struct):
    step: str
    key: str
    value: Annotated[Any, msgspec.Meta(description="any JSON value")]


class RunArtifact(msgspec.Struct):
    id: int
    step_name: str
    name: str
    digest: str
    size: int
    created_at: datetime
    visual: Annotated[
        str | None,
        msgspec.Meta(description="how the run page shows it inline: image, html, or null"),
    ]


class RunModelVersion(msgspec.Struct):
    """A model version the run registered or, `unchanged`, produced again unchanged."""

    model: str
    version: int
    unchanged: bool


class RunOrigin(msgspec.Struct):
    """What started the run, when a trigger did."""

    kind: Annotated[str, msgspec.Meta(examples=["push", "dataset", "cron", "manual", "resume"])]
    trigger_id: int | None
    ref: str | None
    events: int
    fired_at: datetime


class RunDetail(msgspec.Struct):
    """A run as its page shows it: steps, params, latest metrics, artifacts, comments, model
    versions, and the comparison with its original when it is a re-run."""

    project: Project
    run: Run
    steps: list[Step]
    dag: Annotated[str, msgspec.Meta(description="the steps drawn as an SVG ('' for none)")]
    params: list[RunParam]
    logged_params: Annotated[
        list[RunParam], msgspec.Meta(description="params logged while running (not in a spec)")
    ]
    metrics: Annotated[dict[str, float], msgspec.Meta(description="each metric's latest value")]
    artifacts: list[RunArtifact]
    comments: list[Comment]
    models: list[RunModelVersion]
    rerun: RerunDiff | None
    tags: Annotated[dict[str, str], msgspec.Meta(description="MLflow run tags")]
    children: Annotated[list[int], msgspec.Meta(description="child runs (MLflow nested runs)")]
    origin: RunOrigin | None


def run_detail(ctx: dict[str, Any]) -> RunDetail:
    """`run_context` as the API answers it."""
    return RunDetail(
        project=ctx["project"],
        run=ctx["run"],
        steps=ctx["steps"],
        dag=ctx["dag"],
        params=[RunParam(**p) for p in ctx["params"]],
        logged_params=[RunParam(**p) for p in ctx["logged_params"]],
        metrics=ctx["metrics"],
        artifacts=[RunArtifact(**a) for a in ctx["artifacts"]],
        comments=[Comment(**c) for c in ctx["comments"]],
        models=[RunModelVersion(**m) for m in ctx["models"]],
        rerun=None if ctx["rerun"] is None else RerunDiff.of(ctx["rerun"]),
        tags=ctx["tags"],
        children=ctx["children"],
        origin=None if ctx["origin"] is None else RunOrigin(**ctx["origin"]),
    )


MetricHistory = Annotated[
    dict[str, list[tuple[float | None, ...]]],
    msgspec.Meta(
        description="metric -> its points as [step, value], or [step, value, time] with "
        "times=true (seconds since the epoch); a key several steps log is named STEP/KEY",
        examples=[{"loss": [[0, 0.9], [1, 0.7]]}],
    ),
]


class RunRow(msgspec.Struct):
    """A run in the runs table, with the values of the columns asked for."""

    id: int
    name: str | None
    pipeline: str | None
    status: RunStatus
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    values: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="column -> value, for each column asked (metric:KEY, param:STEP.KEY)",
            examples=[{"metric:accuracy": 0.93, "param:train.lr": 0.01}],
        ),
    ]
