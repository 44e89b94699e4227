"""Step outputs published as dataset versions: `publish: {OUTPUT: DATASET}` on a step.

The planner checks that each published output exists and is a table (`dataset` kind) and
that the dataset name is valid; when the run succeeds each published output becomes the
next version of the project's dataset (version 1 when new), authored by the run's creator,
with the message "output O of run N step S" and `produced_by` (run, step) on the version.
A run is published once: a settle that comes again skips what it already published.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reef.errors import InvalidInput
from reef.runtime.dataset_versions import new_version
from reef.runtime.steps import step_dir
from reef.store.runs import Run
from reef.store.status import Status

if TYPE_CHECKING:
    from reef.hub import Stores

log = logging.getLogger("reef.publish")


def check_publish(where: str, publish: dict[str, str], outputs: dict[str, str]) -> None:
    """InvalidInput unless every published output is one of the module's table outputs."""
    for output in publish:
        if output not in outputs:
            raise InvalidInput(
                f"{where}: publish: the module has no output '{output}' "
                f"(its outputs: {', '.join(outputs) or 'none'})"
            )
        if outputs[output] != "dataset":
            raise InvalidInput(
                f"{where}: publish: output '{output}' is a {outputs[output]}, not a table; "
                "only dataset outputs can be published"
            )


def settle_publish(hub: Stores, run: Run, status: Status) -> tuple[Status, Run]:
    """Publish the run's outputs if it succeeded: the run's status and record afterwards
    (a failed publish fails the run, with the reason as its error)."""
    if status != Status.SUCCEEDED:
        return status, run
    try:
        publish_run(hub, run)
    except Exception as e:  # a failed publish fails the run, visibly
        log.exception("publishing the outputs of run %s failed", run.id)
        reason = e.message if isinstance(e, InvalidInput) else str(e)
        hub.runs.update_run(run.id, error=f"publishing outputs failed: {reason}")
        return Status.FAILED, hub.runs.run(run.id)
    return status, run


def publish_run(hub: Stores, run: Run) -> list[dict[str, Any]]:
    """Write each published output of `run` as a new dataset version; the versions made."""
    project = hub.project_name(run.project_id)
    done = {(p["dataset"], p["step"]) for p in hub.catalog.published(run.id)}
    made = []
    for step in run.spec["steps"]:
        for output, dataset in sorted((step.get("publish") or {}).items()):
            if (dataset, step["name"]) in done:
                continue
            made.append(_publish(hub, run, project, step["name"], output, dataset))
    return made


def _publish(
    hub: Stores, run: Run, project: str, step: str, output: str, dataset: str
) -> dict[str, Any]:
    path = step_dir(hub.settings, run.id, step) / "outputs" / f"{output}.parquet"
    if not Path(path).is_file():
        raise InvalidInput(f"step '{step}' wrote no output '{output}' to publish")
    info = hub.datasets.import_file(project, dataset, path, "parquet")
    message = f"output {output} of run {run.id} step {step}"
    return new_version(
        hub, run.created_by, project, dataset, info, message,
        source=f"run {run.id}", produced_by=(run.id, step),
    )  # fmt: skip
