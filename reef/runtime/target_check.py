"""Refuse, when a pipeline is planned, a target column that does not fit what the model
module learns: before anything runs, with the task detector's reason ("'disease_progression'
has 214 distinct numbers in 442 rows: this looks like a number to predict, not groups").

A step is checked when its module learns a task, either chosen by an enum parameter `task`
(`auto` lets the detector decide) or declared by the manifest's top-level `task` key (the
classifier modules), and names its target with a column parameter `target` or `label`. The
target's table is the step's dataset input, or, through data-processor steps (split,
impute...), the dataset at the root of that chain when it holds the target column. Only the
non-binary columns of at most SAMPLE_ROWS rows are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reef.tasks import TaskMismatch, check_task, detect_task

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.manifest import Manifest
    from reef.store.runs import StepPlan

SAMPLE_ROWS = 20_000
TARGET_PARAMS = ("target", "label")


def check_targets(
    hub: Stores, project: str, planned: Sequence[StepPlan], manifests: dict[str, Manifest]
) -> None:
    """TaskMismatch (a 400) naming the step when a learner's target does not fit its task."""
    by_name = {s.name: s for s in planned}
    for step in planned:
        manifest = manifests[step.name]
        kind, target_param = _task(manifest, step.params), _target_param(manifest)
        if kind is None or target_param is None:
            continue
        source = manifest.params[target_param].input or ""
        ref = _root_dataset(step.inputs.get(source), by_name, manifests)
        target = step.params[target_param]
        table = _sample(hub, project, ref, target) if ref else None
        if table is None:
            continue
        exclude = [c for c in step.params.get("exclude") or [] if c in table.column_names]
        try:
            if kind == "auto":
                detect_task(table, target, exclude)
            else:
                check_task(table, target, kind, exclude)  # type: ignore[arg-type]
        except TaskMismatch as e:
            raise TaskMismatch(f"step '{step.name}': {e.message}") from e


def _task(manifest: Manifest, params: dict[str, Any]) -> str | None:
    chosen = manifest.params.get("task")
    if chosen is not None and chosen.type == "enum":
        return str(params["task"])
    if manifest.task == "text_classification" and params.get("text_columns"):
        return "classification"  # the step names its text columns: the module reads them so
    return manifest.task or None


def _target_param(manifest: Manifest) -> str | None:
    return next(
        (p for p in TARGET_PARAMS if p in manifest.params and manifest.params[p].type == "column"),
        None,
    )


def _root_dataset(
    ref: str | None, by_name: dict[str, StepPlan], manifests: dict[str, Manifest]
) -> str | None:
    """The dataset a table input comes from, following data-processor steps upstream."""
    for _ in range(len(by_name) + 1):
        if ref is None or ref.startswith("dataset:"):
            return ref
        upstream = ref.split(".", 1)[0]
        if manifests[upstream].kind != "data-processor":
            return None
        inputs = by_name[upstream].inputs
        ref = next(iter(inputs.values()), None)
    return None


def _sample(hub: Stores, project: str, ref: str, target: str) -> pa.Table | None:
    """The first SAMPLE_ROWS rows of the dataset's non-binary columns; None without `target`."""
    name, version = ref.removeprefix("dataset:").split("@")
    ds = hub.datasets.open(project, name, int(version))
    if target not in ds.schema.names:
        return None
    columns = [
        f.name
        for f in ds.schema
        if not (pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type))
    ]
    return ds.to_table(columns=columns, limit=SAMPLE_ROWS)
