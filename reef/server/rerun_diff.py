"""What a re-run changed against the run it repeated: every step's final metric values side by
side (compared exactly: a faithful re-run gives the same numbers, bit for bit) and every
difference in the reproducibility record (commits, data versions, params, seed, packages)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from reef.errors import NotFound
from reef.hub import Hub
from reef.server.routes import FromPath, HubDep, get
from reef.store.runs import Run

SYSTEM = "system/"  # machine measurements (CPU, memory, GPU): listed apart, never compared
NOT_COMPARED = {"run_id", "step", "hostname", "executable"}  # differ by design, or by host


class MetricComparison(msgspec.Struct):
    """A (step, key)'s final value in the original and in the re-run."""

    step: str
    key: str
    original: float | None
    value: float | None
    difference: Annotated[float | None, msgspec.Meta(description="value - original")]
    identical: Annotated[bool, msgspec.Meta(description="bit for bit, and in both runs")]


class RecordDifference(msgspec.Struct):
    """A field of a step's reproducibility record that differs (`package NAME` per package)."""

    step: str
    field: Annotated[str, msgspec.Meta(examples=["commit", "seed", "package numpy"])]
    original: Any
    value: Any


class RerunDiff(msgspec.Struct):
    """A re-run against the run it repeated: final metrics side by side, record differences.
    `system_metrics_not_compared`: machine measurements (system/...) left out."""

    original: int
    run: int
    finished: Annotated[bool, msgspec.Meta(description="whether both runs have finished")]
    metrics: list[MetricComparison]
    metrics_identical: bool
    differing_metrics: int
    system_metrics_not_compared: int
    record: list[RecordDifference]
    record_identical: bool

    @classmethod
    def of(cls, diff: dict[str, Any]) -> RerunDiff:
        """`rerun_diff`'s answer as typed rows."""
        metrics = [MetricComparison(**m) for m in diff["metrics"]]
        record = [RecordDifference(**r) for r in diff["record"]]
        return cls(**{**diff, "metrics": metrics, "record": record})


def rerun_diff(hub: Hub, run: Run) -> dict[str, Any] | None:
    """The comparison of `run` with the run it re-ran; None when it is not a re-run."""
    if run.rerun_of is None:
        return None
    try:
        original = hub.runs.run(run.rerun_of)
    except NotFound:
        return None  # the original is gone: nothing to compare with
    before, after = hub.runs.final_metrics(original.id), hub.runs.final_metrics(run.id)
    metrics = metric_rows(before, after)
    record = record_rows(
        {s.name: s.record for s in hub.runs.steps(original.id)},
        {s.name: s.record for s in hub.runs.steps(run.id)},
    )
    return {
        "original": original.id,
        "run": run.id,
        "finished": run.finished and original.finished,
        "metrics": metrics,
        "metrics_identical": bool(metrics) and all(m["identical"] for m in metrics),
        "differing_metrics": sum(not m["identical"] for m in metrics),
        "system_metrics_not_compared": sum(k.startswith(SYSTEM) for _, k in {*before, *after}),
        "record": record,
        "record_identical": not record,
    }


def metric_rows(
    before: dict[tuple[str, str], float | None], after: dict[tuple[str, str], float | None]
) -> list[dict[str, Any]]:
    """One row per (step, key) either run reported: both final values, the difference, and
    whether they are exactly equal (a key only one run has is a difference)."""
    rows = []
    for step, key in sorted({*before, *after}):
        if key.startswith(SYSTEM):
            continue
        old, new = before.get((step, key)), after.get((step, key))
        present = (step, key) in before and (step, key) in after
        rows.append(
            {
                "step": step,
                "key": key,
                "original": old,
                "value": new,
                "difference": new - old
                if isinstance(old, float) and isinstance(new, float)
                else None,
                "identical": present and old == new,
            }
        )
    return rows


def record_rows(before: dict[str, dict | None], after: dict[str, dict | None]) -> list[dict]:
    """Each field of each step's record that differs (packages one by one)."""
    rows: list[dict] = []
    for step in sorted({*before, *after}):
        old, new = before.get(step), after.get(step)
        if old is None or new is None:
            if (old is None) != (new is None):
                rows.append(_row(step, "record", _said(old), _said(new)))
            continue
        for field in sorted({*old, *new} - NOT_COMPARED):
            if field == "packages":
                rows += _package_rows(step, old.get(field) or {}, new.get(field) or {})
            elif old.get(field) != new.get(field):
                rows.append(_row(step, field, old.get(field), new.get(field)))
    return rows


def _package_rows(step: str, old: dict, new: dict) -> list[dict]:
    return [
        _row(step, f"package {name}", old.get(name), new.get(name))
        for name in sorted({*old, *new})
        if old.get(name) != new.get(name)
    ]


def _row(step: str, field: str, old: Any, new: Any) -> dict:
    return {"step": step, "field": field, "original": old, "value": new}


def _said(record: dict | None) -> str:
    return "recorded" if record is not None else "not recorded (the step did not start)"


@get("/api/projects/{project:str}/runs/{run_id:int}/rerun-diff", access="reporter")
def rerun_diff_api(hub: HubDep, project: FromPath[str], run_id: FromPath[int]) -> RerunDiff:
    """A re-run against its original: final metrics side by side, record differences."""
    run = hub.runs.run_in(project, run_id)
    diff = rerun_diff(hub, run)
    if diff is None:
        raise NotFound(f"run {run_id} is not a re-run: it has no original to compare with")
    return RerunDiff.of(diff)


ROUTES = [rerun_diff_api]
