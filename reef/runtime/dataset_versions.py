"""Recording a dataset version the store just made: who made it and why (catalog row and
audit entry), which run step produced it, and its rules checked. Every way a version is made
(an upload, a change, a pipeline step publishing an output) ends here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reef.errors import InvalidInput
from reef.runtime.events import DATASET_VERSION
from reef.store.datasets import VersionInfo
from reef.store.rules import check_version

if TYPE_CHECKING:
    from reef.hub import Stores


def new_version(
    hub: Stores,
    author: str,
    project: str,
    name: str,
    info: VersionInfo,
    message: str,
    source: str,
    produced_by: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """Record a version the store just made and check its rules; `produced_by` is the
    (run id, step name) that published it. A write that changed nothing made no version:
    nothing is recorded and the answer says which version is still the latest."""
    if info.unchanged:
        return unchanged_version(name, info)
    p = hub.projects.get(project)
    dataset_id = hub.catalog.dataset_id(p.id, name, author=author)
    hub.catalog.record_version(
        dataset_id,
        info.version,
        author=author,
        message=message,
        num_rows=info.num_rows,
        columns=info.columns,
        source=source,
        produced_by=produced_by,
    )
    target = f"dataset {name}@{info.version}"
    hub.audit.record(author, "dataset.version", target, project, rows=info.num_rows,
                     message=message, source=source)  # fmt: skip
    validation = check_rules(hub, project, name, dataset_id, info.version)
    hub.events.emit(DATASET_VERSION, project, name, info.version, produced_by, validation)
    return {
        **_version(name, info),
        "author": author,
        "message": message,
        "source": source,
        "produced_by": None if produced_by is None else _produced(*produced_by),
        "validation": validation,
        "unchanged": False,
    }


def unchanged_version(name: str, info: VersionInfo) -> dict[str, Any]:
    """The answer to a write that held the latest version's rows: no new version."""
    detail = f"unchanged, still version {info.version}"
    return {**_version(name, info), "unchanged": True, "detail": detail}


def _version(name: str, info: VersionInfo) -> dict[str, Any]:
    return {
        "dataset": name,
        "version": info.version,
        "num_rows": info.num_rows,
        "columns": [{"name": n, "type": t} for n, t in info.columns],
        "notes": list(info.notes),
        "skipped": info.skipped,
    }


def _produced(run_id: int, step: str) -> dict[str, Any]:
    return {"run": run_id, "step": step}


def check_rules(
    hub: Stores, project: str, name: str, dataset_id: int, version: int
) -> dict[str, Any] | None:
    """Check the dataset's rules on `version` and store the result (None: no rules)."""
    rules = hub.catalog.rules(dataset_id)
    if not rules:
        return None
    previous = hub.catalog.previous_version(dataset_id, version)
    ds = hub.datasets.open(project, name, version)
    before = hub.datasets.open(project, name, previous) if previous else None
    try:
        result = check_version(ds, before, rules)
    except InvalidInput as e:
        failed = {"name": "rules", "passed": False, "failures": 0, "detail": e.message}
        result = {"version": version, "passed": False, "checks": [failed]}
    hub.catalog.record_check(dataset_id, version, result["passed"], result["checks"])
    return result
