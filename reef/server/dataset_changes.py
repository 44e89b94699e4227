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
from typing import Annotated, Any, Literal

import msgspec
import pyarrow as pa
from litestar import Request
from msgspec import Meta

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


UPLOAD_FORM = {  # the multipart form of an upload (a new dataset, or its next version)
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "name": {"type": "string", "description": "the dataset's name (default: the file's)"},
        "message": {"type": "string", "description": "why this version was made"},
        "mode": {"type": "string", "enum": ["replace", "append"]},
        "format": {"type": "string", "enum": ["csv", "parquet", "jsonl", "xlsx"]},
        "delimiter": {"type": "string"},
        "encoding": {"type": "string"},
        "sheet": {"type": "string"},
        "column_types": {"type": "string", "description": 'JSON such as {"age": "int64"}'},
    },
}


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

Row = dict[str, Any]


class _Change(msgspec.Struct, tag_field="op", forbid_unknown_fields=True, kw_only=True):
    message: Annotated[
        str | None, Meta(description="why the change was made (default: what it did)")
    ] = None


class AppendRows(_Change, tag="append"):
    """Add rows (objects keyed by column name)."""

    rows: Annotated[list[Row], Meta(min_length=1, examples=[[{"city": "Oslo", "price": 3}]])]


class UpdateRows(_Change, tag="update_rows"):
    """Change cells of rows named by `key` (default `_rowid`) in each update."""

    updates: Annotated[list[Row], Meta(examples=[[{"_rowid": 4, "price": 5}]])]
    key: str | None = None


class DeleteRows(_Change, tag="delete_rows"):
    where: Annotated[str, Meta(description="an SQL condition", examples=["price < 0"])]


class AddColumn(_Change, tag="add_column"):
    column: str
    type: Annotated[str, Meta(examples=["int64", "string", "float64"])]
    default: Any = None


class RenameColumn(_Change, tag="rename_column"):
    column: str
    new_name: str


class DropColumn(_Change, tag="drop_column"):
    column: str


class Restore(_Change, tag="restore"):
    """Make an old version (number or tag) the latest again."""

    version: int | str


DatasetChange = (
    AppendRows | UpdateRows | DeleteRows | AddColumn | RenameColumn | DropColumn | Restore
)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _make(hub: Hub, project: str, name: str, change: DatasetChange) -> tuple[VersionInfo, str]:
    """The new version a change makes, and what it did in words."""
    ds = hub.datasets
    match change:
        case AppendRows(rows=rows):
            return ds.append(project, name, _table(rows)), f"append {_rows(len(rows))}"
        case UpdateRows(updates=updates, key=key):
            info = ds.update_rows(project, name, updates, key=key or "_rowid")
            return info, f"edit {_rows(len(updates))}"
        case DeleteRows(where=where):
            return ds.delete_rows(project, name, where), f"delete rows where {where}"
        case AddColumn(column=column, type=kind, default=default):
            info = ds.add_column(project, name, column, kind, default)
            return info, f"add column {column} ({kind})"
        case RenameColumn(column=column, new_name=new_name):
            info = ds.rename_column(project, name, column, new_name)
            return info, f"rename column {column} to {new_name}"
        case DropColumn(column=column):
            return ds.drop_column(project, name, column), f"drop column {column}"
        case Restore(version=version):
            number = ds.resolve(project, name, version)
            return ds.restore(project, name, number), f"restore v{number}"
    raise AssertionError(change)


def _table(rows: list[Row]) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(f"rows: the rows do not form a table: {e}") from None


def apply_change(hub: Hub, who: Principal, project: str, name: str, change: DatasetChange) -> dict:
    """One change made as the next version."""
    dataset_id(hub, project, name)
    info, what = _make(hub, project, name, change)
    message = change.message or what
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


class TagRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The version to tag (number or tag; default the latest); `move` moves an existing tag."""

    version: int | str | None = None
    move: bool = False


class Rule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A validation rule checked on every new version (see reef/store/rules.py): not_null,
    range (min, max), allowed (values), unique, row_count (min, max), drift_psi (threshold:
    how far a numeric column's distribution may move from the previous version's)."""

    type: Literal["not_null", "range", "allowed", "unique", "row_count", "drift_psi"]
    column: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    values: list[str | int | float | bool | None] | None = None
    threshold: int | float | None = None


class RuleList(msgspec.Struct, forbid_unknown_fields=True):
    rules: Annotated[list[Rule], Meta(examples=[[{"type": "not_null", "column": "label"}]])]


def rule_dicts(body: RuleList | list[Rule]) -> list[dict[str, Any]]:
    """The rules as `parse_rules` takes them."""
    return msgspec.to_builtins(body.rules if isinstance(body, RuleList) else body)


KEY_HELP = "a column that names each row, so reef can tell a changed row from a new one"


def set_key(hub: Hub, who: Principal, project: str, name: str, column: str | None) -> dict:
    dataset_id(hub, project, name)
    hub.datasets.set_key(project, name, column or None)
    hub.audit.record(who.name, "dataset.key", f"dataset {name}", project, key=column or None)
    return {"key": column or None}


def key_state(hub: Hub, project: str, name: str) -> dict[str, Any]:
    """The dataset's key, and the column reef suggests when it has none."""
    dataset_id(hub, project, name)
    key = hub.datasets.key(project, name)
    suggested = None if key else hub.datasets.suggested_key(project, name)
    return {"key": key, "suggested": suggested, "help": KEY_HELP}


def set_rules(
    hub: Hub, who: Principal, project: str, name: str, rules: list[dict[str, Any]]
) -> dict:
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
