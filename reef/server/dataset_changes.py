"""Changes of datasets, each made as a new version: imports (replace or append), row edits,
deletes, column changes and restores; and tags, the key and the validation rules.

Every new version goes through `new_version` (`reef.runtime.dataset_versions`): it records
who made it and why (catalog row and audit entry) and checks the dataset's rules on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from litestar import Request

from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.runtime.dataset_versions import check_rules, new_version
from reef.server.upload_stream import Received, receive_upload
from reef.store.dataset_import import ImportOptions, expected_rows
from reef.store.datasets import VersionInfo, VersionRef
from reef.store.import_jobs import ImportJob
from reef.store.people import Principal, check_name
from reef.store.rules import parse_rules

# --- imports -----------------------------------------------------------------------------------


def import_options(data: Mapping[str, Any]) -> ImportOptions:
    """Import options from form fields: delimiter, encoding, sheet, mode, column_types (a
    JSON object) and, from the preview form, one `type.<column>` field per column."""
    types = data.get("column_types") or {}
    if isinstance(types, str):
        try:
            types = json.loads(types)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"column_types must be a JSON object: {e}") from None
    if not isinstance(types, dict) or not all(isinstance(v, str) for v in types.values()):
        raise InvalidInput('column_types must be an object like {"age": "int64"}')
    types = {**types, **{k[5:]: v for k, v in data.items() if k.startswith("type.") and v}}
    delimiter = _text(data, "delimiter")
    return ImportOptions(
        delimiter="\t" if delimiter == "\\t" else delimiter,
        encoding=_text(data, "encoding"),
        sheet=_text(data, "sheet"),
        column_types=types,
        mode=_text(data, "mode") or "replace",
        key=_text(data, "key"),
    )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value != "" else None


async def receive(request: Request, hub: Hub) -> Received:
    """The request's multipart upload, streamed into the data dir."""
    return await receive_upload(request, hub.settings.data_dir, hub.settings.max_upload_mb)


@dataclass(frozen=True)
class _Upload:
    """What an upload asks for, checked before its file is read."""

    src: Path
    filename: str
    name: str
    options: ImportOptions
    message: str
    fmt: str | None


def _upload_request(hub: Hub, project: str, received: Received, name: str | None) -> _Upload:
    if received.path is None:
        raise InvalidInput("send the file in multipart field 'file'")
    data, filename = received.fields, received.filename
    hub.projects.get(project)
    name = check_name("dataset", name or data.get("name") or Path(filename).stem.lower())
    options = import_options(data)
    verb = "append" if options.mode == "append" else "upload"
    message = str(data.get("message") or f"{verb} {filename}")
    return _Upload(received.path, filename, name, options, message, _text(data, "format"))


def upload(
    hub: Hub, who: Principal, project: str, received: Received, name: str | None = None
) -> dict:
    """Store an uploaded file as the next version of dataset `name` (version 1 when new):
    replacing the data, or added to it with mode=append. It runs as an import job (in the
    bounded import pool) and this waits for it."""
    return hub.datasets.imports.run(*_import_job(hub, who, project, received, name))


def start_upload(
    hub: Hub, who: Principal, project: str, received: Received, name: str | None = None
) -> dict:
    """Like `upload`, but the import runs in the background: the job
    (`DatasetStore.imports`) to poll for its progress and, at the end, its version."""
    return hub.datasets.imports.start(*_import_job(hub, who, project, received, name)).as_dict()


def _import_job(
    hub: Hub, who: Principal, project: str, received: Received, name: str | None
) -> tuple[Callable[[int], ImportJob], Callable[[ImportJob], dict]]:
    """(job_for, work) of an import job for the upload; the upload's folder goes when the
    job ends (or now, if the request is refused)."""
    try:
        asked = _upload_request(hub, project, received, name)
        total, estimated = expected_rows(asked.src, asked.fmt)
    except BaseException:
        received.discard()
        raise
    size = asked.src.stat().st_size

    def job_for(job_id: int) -> ImportJob:
        return ImportJob(job_id, project, asked.name, asked.src.name, size, total, estimated)

    def work(job: ImportJob) -> dict:
        try:
            return _import(hub, who, project, asked, job)
        finally:
            received.discard()

    return job_for, work


def _import(hub: Hub, who: Principal, project: str, asked: _Upload, job: ImportJob) -> dict:
    info = hub.datasets.import_file(
        project, asked.name, asked.src, asked.fmt, asked.options, job.progress
    )
    job.phase = "checking"
    message = asked.message
    made = new_version(hub, who.name, project, asked.name, info, message, source=asked.filename)
    if asked.options.key:
        hub.audit.record(who.name, "dataset.key", f"dataset {asked.name}", project,
                         key=asked.options.key)  # fmt: skip
    return {**made, "suggested_key": hub.datasets.suggested_key(project, asked.name)}


def preview(hub: Hub, received: Received) -> dict:
    """What an upload would import (first rows, types, detected options); nothing is kept."""
    try:
        if received.path is None:
            raise InvalidInput("send the file in multipart field 'file'")
        data = received.fields
        shown = hub.datasets.preview(received.path, _text(data, "format"), import_options(data))
    finally:
        received.discard()
    return {**shown, "filename": received.filename}


# --- changes -----------------------------------------------------------------------------------

Change = Callable[[Hub, str, str, dict], tuple[VersionInfo, str]]


def _field(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidInput(f"'{key}' is missing or of the wrong type")
    return value


def _append(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    rows = _field(body, "rows", list)
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise InvalidInput("'rows' must be a non-empty list of objects (column -> value)")
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(f"the rows do not form a table: {e}") from None
    return hub.datasets.append(project, name, table), f"append {_rows(len(rows))}"


def _update_rows(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    updates = _field(body, "updates", list)
    if not all(isinstance(u, dict) for u in updates):
        raise InvalidInput("'updates' must be a list of objects, each naming its row by '_rowid'")
    key = body.get("key") or "_rowid"
    info = hub.datasets.update_rows(project, name, updates, key=str(key))
    return info, f"edit {_rows(len(updates))}"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _delete_rows(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    where = _field(body, "where", str)
    return hub.datasets.delete_rows(project, name, where), f"delete rows where {where}"


def _add_column(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    column, kind = _field(body, "column", str), _field(body, "type", str)
    info = hub.datasets.add_column(project, name, column, kind, body.get("default"))
    return info, f"add column {column} ({kind})"


def _rename_column(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    column, new_name = _field(body, "column", str), _field(body, "new_name", str)
    info = hub.datasets.rename_column(project, name, column, new_name)
    return info, f"rename column {column} to {new_name}"


def _drop_column(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    column = _field(body, "column", str)
    return hub.datasets.drop_column(project, name, column), f"drop column {column}"


def _restore(hub: Hub, project: str, name: str, body: dict) -> tuple[VersionInfo, str]:
    number = hub.datasets.resolve(project, name, _field(body, "version", (int, str)))
    return hub.datasets.restore(project, name, number), f"restore v{number}"


CHANGES: dict[str, Change] = {
    "append": _append,
    "update_rows": _update_rows,
    "delete_rows": _delete_rows,
    "add_column": _add_column,
    "rename_column": _rename_column,
    "drop_column": _drop_column,
    "restore": _restore,
}


def apply_change(hub: Hub, who: Principal, project: str, name: str, body: Any) -> dict:
    """One change (`{"op": ..., "message": ...}`) made as the next version."""
    if not isinstance(body, dict) or body.get("op") not in CHANGES:
        raise InvalidInput(f"send a JSON object with 'op': one of {', '.join(CHANGES)}")
    dataset_id(hub, project, name)
    info, what = CHANGES[body["op"]](hub, project, name, body)
    message = str(body.get("message") or what)
    return new_version(hub, who.name, project, name, info, message, source=what)


# --- tags, key, rules --------------------------------------------------------------------------


def dataset_id(hub: Hub, project: str, name: str) -> int:
    p = hub.projects.get(project)
    try:
        return hub.catalog.dataset_id(p.id, name)
    except NotFound:
        raise NotFound(f"dataset '{name}' not found in project '{project}'") from None


def set_tag(
    hub: Hub, who: Principal, project: str, name: str, tag: str, version: VersionRef, move: bool
) -> dict:
    dataset_id(hub, project, name)
    hub.datasets.tag(project, name, tag, version, move=move)
    number = hub.datasets.resolve(project, name, tag)
    hub.audit.record(who.name, "dataset.tag", f"dataset {name}@{number}", project, tag=tag)
    return {"tag": tag, "version": number}


def remove_tag(hub: Hub, who: Principal, project: str, name: str, tag: str) -> None:
    dataset_id(hub, project, name)
    hub.datasets.untag(project, name, tag)
    hub.audit.record(who.name, "dataset.untag", f"dataset {name}", project, tag=tag)


KEY_HELP = "a column that names each row, so reef can tell a changed row from a new one"


def set_key(hub: Hub, who: Principal, project: str, name: str, column: Any) -> dict:
    dataset_id(hub, project, name)
    if column is not None and not isinstance(column, str):
        raise InvalidInput('send {"column": NAME} or {"column": null} to clear the key')
    hub.datasets.set_key(project, name, column or None)
    hub.audit.record(who.name, "dataset.key", f"dataset {name}", project, key=column or None)
    return {"key": column or None}


def key_state(hub: Hub, project: str, name: str) -> dict[str, Any]:
    """The dataset's key, and the column reef suggests when it has none."""
    dataset_id(hub, project, name)
    key = hub.datasets.key(project, name)
    suggested = None if key else hub.datasets.suggested_key(project, name)
    return {"key": key, "suggested": suggested, "help": KEY_HELP}


def set_rules(hub: Hub, who: Principal, project: str, name: str, rules: Any) -> dict:
    """Replace the dataset's rules and check them on the latest version at once."""
    ds_id = dataset_id(hub, project, name)
    latest = hub.datasets.info(project, name)
    rules = parse_rules(rules, [c for c, _ in latest.columns])
    hub.catalog.set_rules(ds_id, rules, who.name)
    hub.audit.record(who.name, "dataset.rules", f"dataset {name}", project, rules=len(rules))
    validation = check_rules(hub, project, name, ds_id, latest.version)
    return {"rules": rules, "validation": validation}


def recheck(hub: Hub, project: str, name: str, ref: VersionRef) -> dict | None:
    number = hub.datasets.resolve(project, name, ref)
    return check_rules(hub, project, name, dataset_id(hub, project, name), number)
