"""Changes of datasets, each made as a new version: imports (replace or append), row edits,
deletes, column changes and restores; and tags, the key and the validation rules.

Every new version goes through `new_version` (`reef.runtime.dataset_versions`): it records
who made it and why (catalog row and audit entry) and checks the dataset's rules on it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from litestar.datastructures import UploadFile

from reef.errors import InvalidInput, NotFound, TooLarge
from reef.hub import Hub
from reef.runtime.dataset_versions import check_rules, new_version
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
    )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value != "" else None


def _upload_file(data: Mapping[str, Any]) -> UploadFile:
    file = data.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidInput("send the file in multipart field 'file'")
    return file


@dataclass(frozen=True)
class _Upload:
    """What an upload asks for, checked before its file is read."""

    file: UploadFile
    name: str
    options: ImportOptions
    message: str
    fmt: str | None


def _upload_request(hub: Hub, project: str, data: dict, name: str | None) -> _Upload:
    file = _upload_file(data)
    hub.projects.get(project)
    name = check_name("dataset", name or data.get("name") or Path(file.filename).stem.lower())
    options = import_options(data)
    verb = "append" if options.mode == "append" else "upload"
    message = str(data.get("message") or f"{verb} {file.filename}")
    return _Upload(file, name, options, message, _text(data, "format"))


def upload(hub: Hub, who: Principal, project: str, data: dict, name: str | None = None) -> dict:
    """Store an uploaded file as the next version of dataset `name` (version 1 when new):
    replacing the data, or added to it with mode=append."""
    asked = _upload_request(hub, project, data, name)
    with tempfile.TemporaryDirectory(dir=hub.settings.data_dir) as tmp:
        src = _spool(asked.file, Path(tmp), hub.settings.max_upload_mb << 20)
        return _import(hub, who, project, asked, src)


def start_upload(
    hub: Hub, who: Principal, project: str, data: dict, name: str | None = None
) -> dict:
    """Like `upload`, but the import runs in the background once the file is spooled: the
    job (`DatasetStore.imports`) to poll for its progress and, at the end, its version."""
    asked = _upload_request(hub, project, data, name)
    tmp = Path(tempfile.mkdtemp(dir=hub.settings.data_dir))
    try:
        src = _spool(asked.file, tmp, hub.settings.max_upload_mb << 20)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total, estimated = expected_rows(src, asked.fmt)
    size = src.stat().st_size

    def job_for(job_id: int) -> ImportJob:
        return ImportJob(job_id, project, asked.name, src.name, size, total, estimated)

    def work(job: ImportJob) -> dict:
        try:
            return _import(hub, who, project, asked, src, job)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return hub.datasets.imports.start(job_for, work).as_dict()


def _import(
    hub: Hub, who: Principal, project: str, asked: _Upload, src: Path, job: ImportJob | None = None
) -> dict:
    progress = job.progress if job is not None else None
    info = hub.datasets.import_file(project, asked.name, src, asked.fmt, asked.options, progress)
    if job is not None:
        job.phase = "checking"
    source = asked.file.filename or ""
    return new_version(hub, who.name, project, asked.name, info, asked.message, source=source)


def preview(hub: Hub, data: dict) -> dict:
    """What an upload would import (first rows, types, detected options); nothing is kept."""
    file = _upload_file(data)
    with tempfile.TemporaryDirectory(dir=hub.settings.data_dir) as tmp:
        src = _spool(file, Path(tmp), hub.settings.max_upload_mb << 20)
        shown = hub.datasets.preview(src, _text(data, "format"), import_options(data))
    return {**shown, "filename": file.filename}


def _spool(file: UploadFile, folder: Path, limit: int) -> Path:
    dest = folder / (Path(file.filename or "upload").name or "upload")
    file.file.seek(0)
    with dest.open("wb") as out:
        copied = 0
        while chunk := file.file.read(1 << 20):
            copied += len(chunk)
            if copied > limit:
                raise TooLarge(f"upload larger than the limit of {limit >> 20} MiB")
            out.write(chunk)
    if copied == 0:
        raise InvalidInput(f"the uploaded file {file.filename!r} is empty")
    return dest


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


def set_key(hub: Hub, who: Principal, project: str, name: str, column: Any) -> dict:
    dataset_id(hub, project, name)
    if column is not None and not isinstance(column, str):
        raise InvalidInput('send {"column": NAME} or {"column": null} to clear the key')
    hub.datasets.set_key(project, name, column or None)
    hub.audit.record(who.name, "dataset.key", f"dataset {name}", project, key=column or None)
    return {"key": column or None}


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
