"""The way through a project (data -> pipelines -> runs -> models) with the next sensible step,
and the live fragments of the pages that show runs: an htmx request for a page answers only
the fragment it targets (`request.htmx.target`), which polls itself while something runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.response import Template

from reef.hub import Hub
from reef.store.status import Status

RUNS_TARGET = "runs-live"  # the element id of a page's runs table
BUSY_POLL, IDLE_POLL = "2s", "10s"


@dataclass(frozen=True)
class Stage:
    name: str  # data | pipelines | runs | models
    count: int
    link: str
    help: str  # what the stage is, in plain words


@dataclass(frozen=True)
class NextStep:
    text: str  # "Upload your data"
    link: str
    why: str
    stage: str  # the stage it moves on


def stages(project: str, ctx: dict[str, Any]) -> list[Stage]:
    base = f"/projects/{project}"
    return [
        Stage("data", len(ctx["datasets"]), f"{base}#datasets", "the tables you upload and fix"),
        Stage("pipelines", len(ctx["pipelines"]), f"{base}#pipelines", "saved recipes of steps"),
        Stage(
            "runs", len(ctx["runs"]), f"{base}/runs", "each time a pipeline ran, and its results"
        ),
        Stage("models", len(ctx["models"]), f"{base}#models", "trained models that answer"),
    ]


def next_step(project: str, ctx: dict[str, Any]) -> NextStep:
    """The one thing to do next, from what the project holds."""
    base = f"/projects/{project}"
    datasets, runs, models = ctx["datasets"], ctx["runs"], ctx["models"]
    if not datasets:
        return NextStep(
            "Upload your data",
            f"{base}/import-dataset",
            "a CSV or Excel file becomes a dataset",
            "data",
        )
    if models:
        m = models[0]["name"]
        return NextStep(
            f"Try model {m}",
            f"{base}/models/{m}",
            "ask it about one row, and tell it when it is wrong",
            "models",
        )
    if runs and not runs[0].finished:
        return NextStep(
            f"Watch run {runs[0].id}", f"{base}/runs/{runs[0].id}", "it is working", "runs"
        )
    if runs and runs[0].status == Status.FAILED:
        return NextStep(
            f"See why run {runs[0].id} failed",
            f"{base}/runs/{runs[0].id}",
            "its log says why",
            "runs",
        )
    d = datasets[0]["name"]
    return NextStep(
        "Train a model", f"{base}/datasets/{d}", f"pick the column of {d} to predict", "pipelines"
    )


def path_context(project: str, ctx: dict[str, Any]) -> dict[str, Any]:
    step = next_step(project, ctx)
    return {"stages": stages(project, ctx), "next": step, "next_stage": step.stage}


def wants(request: Request, target: str) -> bool:
    """An htmx request swapping the element `target`: answer that fragment only."""
    return bool(request.htmx) and request.htmx.target == target


def runs_links(project: str, runs: list, pipeline: str | None = None) -> dict[str, Any]:
    """Where the full runs table and Compare are, for the runs a page shows."""
    base = f"/projects/{project}"
    done = [r.id for r in runs if r.finished][:5]
    return {
        "runs_url": f"{base}/runs" + (f"?pipeline={pipeline}" if pipeline else ""),
        "compare_url": f"{base}/compare?ids={','.join(map(str, done))}" if len(done) > 1 else None,
        "poll": BUSY_POLL if any(not r.finished for r in runs) else IDLE_POLL,
    }


def runs_fragment(hub: Hub, project: str, src: str, pipeline: str | None = None) -> Template:
    p = hub.projects.get(project)
    runs = hub.runs.list_runs(p.id, limit=200 if pipeline else 20)
    runs = [r for r in runs if r.pipeline == pipeline][:20] if pipeline else runs
    ctx = {"project": p, "runs": runs, "runs_src": src, **runs_links(project, runs, pipeline)}
    return Template("_runs_live.html", context=ctx)
