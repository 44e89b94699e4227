"""What the dataset pages and their JSON twins show: one context per view (dataset, version,
rows, diff, query), built once and rendered as a page, a partial or JSON; and downloads."""

from __future__ import annotations

import re
from typing import Annotated, Any, BinaryIO

import msgspec
from litestar.response import Stream
from msgspec import Meta

from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.server.dataset_changes import dataset_id
from reef.server.dataset_export import export_stream
from reef.store.dataset_query import export_query, run_query
from reef.store.datasets import VersionRef
from reef.store.people import Principal

PAGE = 50
QUERY_ROWS, MAX_QUERY_ROWS = 1000, 10_000
_VERSIONED_NAME = re.compile(r'"([a-z0-9][a-z0-9_.-]*)@([A-Za-z0-9][A-Za-z0-9_.-]*)"')


# --- contexts (one per page, the JSON twin returns the same) ----------------------------------


def dataset_context(hub: Hub, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    ds_id = dataset_id(hub, project, name)
    versions = hub.catalog.versions(ds_id)
    tags = hub.datasets.tags(project, name)
    checks, readers = hub.catalog.checks(ds_id), hub.catalog.readers(p.id, name)
    for v in versions:
        v["tags"] = sorted(t for t, n in tags.items() if n == v["version"])
        check = checks.get(v["version"])
        v["valid"] = None if check is None else check["passed"]
        v["runs"] = readers.get(v["version"], [])
    return {
        "project": p,
        "dataset": name,
        "versions": versions,
        "latest": versions[0]["version"],
        "columns": versions[0]["columns"],
        "tags": tags,
        "key": hub.datasets.key(project, name),
        "rules": hub.catalog.rules(ds_id),
    }


def version_context(hub: Hub, project: str, name: str, ref: VersionRef) -> dict[str, Any]:
    ds_id = dataset_id(hub, project, name)
    number = hub.datasets.resolve(project, name, ref)
    row = hub.catalog.version(ds_id, number)
    if row is None:
        raise NotFound(f"dataset '{name}' has no recorded version {number}")
    tags = hub.datasets.tags(project, name)
    p = hub.projects.get(project)
    return {
        **row,
        "dataset": name,
        "tags": sorted(t for t, n in tags.items() if n == number),
        "validation": hub.catalog.checks(ds_id).get(number),
        "runs": hub.catalog.readers(p.id, name).get(number, []),
    }


def rows_context(
    hub: Hub,
    project: str,
    name: str,
    version: VersionRef,
    offset: int,
    limit: int,
    with_row_id: bool = False,
) -> dict[str, Any]:
    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidInput("offset must be >= 0 and limit between 1 and 1000")
    info = hub.datasets.info(project, name, version)
    columns, rows = hub.datasets.rows(project, name, info.version, offset, limit, with_row_id)
    return {
        "project": project,
        "dataset": name,
        "version": info.version,
        "offset": offset,
        "limit": limit,
        "total": info.num_rows,
        "columns": columns,
        "types": dict(info.columns),
        "rows": rows,
    }


def diff_context(
    hub: Hub, project: str, name: str, old: str | None, new: str | None, offset: int, limit: int
) -> dict[str, Any]:
    """The diff from `old` to `new` (default: the latest and the version before it)."""
    ds_id = dataset_id(hub, project, name)
    to_v = hub.datasets.resolve(project, name, new or None)
    from_v = old or hub.catalog.previous_version(ds_id, to_v) or to_v
    diff = hub.datasets.diff(project, name, from_v, to_v, offset, limit)
    return {"dataset": name, **diff, "from_v": diff["from"], "to_v": diff["to"]}


# --- query -------------------------------------------------------------------------------------


def query_tables(
    hub: Hub, project: str, name: str, version: VersionRef, sql: str
) -> dict[str, object]:
    """The datasets a query sees: `name` at `version`, the project's other datasets named in
    the SQL at their latest, and `"other@V"` / `"other@tag"` (double-quoted) at that version."""
    p = hub.projects.get(project)
    names = [
        d["name"] for d in hub.catalog.datasets(p.id) if d["name"] in sql and d["name"] != name
    ]
    tables: dict[str, object] = {n: hub.datasets.open(project, n) for n in names}
    tables[name] = hub.datasets.open(project, name, version)
    for other, ref in _VERSIONED_NAME.findall(sql):
        tables[f"{other}@{ref}"] = hub.datasets.open(project, other, ref)
    return tables


class Query(msgspec.Struct, forbid_unknown_fields=True):
    """SQL over the dataset (named by its name; other datasets of the project by theirs, or
    "name@V" for a version) at `version` (number or tag; default the latest)."""

    sql: Annotated[str, Meta(examples=["SELECT city, avg(price) FROM homes GROUP BY city"])]
    version: int | str | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_QUERY_ROWS)] = QUERY_ROWS


def query_body(body: Query) -> tuple[str, VersionRef, int]:
    if not body.sql.strip():
        raise InvalidInput("sql: send a query")
    return body.sql, body.version, body.limit


def query_context(
    hub: Hub, project: str, name: str, sql: str, version: VersionRef, limit: int = QUERY_ROWS
) -> dict[str, Any]:
    """Run a query (blocking: call it through `run_query_in_pool`)."""
    dataset_id(hub, project, name)
    tables = query_tables(hub, project, name, version, sql)
    timeout_s = hub.settings.query_timeout
    columns, rows, truncated = run_query(tables, sql, limit, timeout_s)
    return {
        "dataset": name,
        "version": tables[name].version,  # type: ignore[attr-defined]
        "sql": sql,
        "columns": columns,
        "rows": rows,
        "truncated": truncated,
        "limit": limit,
        "tables": {n: t.version for n, t in tables.items()},  # type: ignore[attr-defined]
    }


async def run_query_in_pool(
    hub: Hub,
    who: Principal,
    project: str,
    name: str,
    sql: str,
    version: VersionRef,
    limit: int = QUERY_ROWS,
) -> dict[str, Any]:
    """`query_context` run in the query pool for `who` (Busy, 429, when it is full)."""
    return await hub.queries.run(who.name, query_context, hub, project, name, sql, version, limit)


async def query_download(
    hub: Hub, who: Principal, project: str, name: str, sql: str, version: VersionRef, fmt: str
) -> Stream:
    timeout_s = hub.settings.export_timeout

    def write(out: BinaryIO) -> int:
        dataset_id(hub, project, name)
        tables = query_tables(hub, project, name, version, sql)
        return export_query(tables, sql, fmt, out, timeout_s)

    return await export_stream(write, fmt, f"{name}-query", hub.queries, who.name, timeout_s)


async def version_download(
    hub: Hub, who: Principal, project: str, name: str, ref: VersionRef, fmt: str
) -> Stream:
    number = await hub.queries.run(who.name, _resolve, hub, project, name, ref)
    return await export_stream(
        lambda out: hub.datasets.export(project, name, number, fmt, out),
        fmt,
        f"{name}-v{number}",
        hub.queries,
        who.name,
        hub.settings.export_timeout,
    )


def _resolve(hub: Hub, project: str, name: str, ref: VersionRef) -> int:
    dataset_id(hub, project, name)
    return hub.datasets.resolve(project, name, ref)
