"""Validation rules of a dataset, checked on every new version with DuckDB over Lance.

A dataset's rules are a JSON list; each rule is an object with a `type`:

    {"type": "not_null", "column": "label"}
    {"type": "range", "column": "score", "min": 0, "max": 1}        (min or max may be left out)
    {"type": "allowed", "column": "label", "values": ["cat", "dog"]}
    {"type": "unique", "column": "id"}
    {"type": "row_count", "min": 100, "max": 1000000}
    {"type": "drift_psi", "column": "score", "threshold": 0.2}      (no column: every number)

A check's result says whether it passed, how many rows failed and up to five examples.
`drift_psi` compares a version with the one before it: the previous version's deciles of each
numeric column make 10 bins, and the population stability index
sum((new% - old%) * ln(new% / old%)) over the bins must stay at or under the threshold
(0.1 is a small shift, 0.25 a large one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import lance
import pyarrow as pa

from reef.errors import InvalidInput
from reef.store.dataset_query import deadline, sandbox
from reef.store.dataset_values import jsonable, table_rows

if TYPE_CHECKING:
    from reef.store.catalog import Catalog

RULE_FIELDS: dict[str, tuple[str, ...]] = {
    "not_null": ("column",),
    "range": ("column", "min", "max"),
    "allowed": ("column", "values"),
    "unique": ("column",),
    "row_count": ("min", "max"),
    "drift_psi": ("column", "threshold"),
}
DEFAULT_PSI = 0.2
EXAMPLES = 5
CHECK_TIMEOUT_S = 300
_EPSILON = 1e-4  # a bin's share when it is empty, so the logarithm stays finite


# --- parsing -------------------------------------------------------------------------------


def parse_rules(data: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rules in `data`, checked and normalised; InvalidInput names the bad rule."""
    if not isinstance(data, list):
        raise InvalidInput("rules are a JSON list of objects with a 'type'")
    return [_parse_rule(rule, i + 1, columns) for i, rule in enumerate(data)]


def _parse_rule(rule: Any, index: int, columns: Sequence[str]) -> dict[str, Any]:
    where = f"rule {index}"
    kind = rule.get("type") if isinstance(rule, dict) else None
    if kind not in RULE_FIELDS:
        raise InvalidInput(f"{where}: 'type' must be one of {', '.join(RULE_FIELDS)}")
    fields = RULE_FIELDS[kind]
    if unknown := sorted(set(rule) - {"type", *fields}):
        raise InvalidInput(f"{where} ({kind}): unknown field(s) {', '.join(unknown)}")
    out: dict[str, Any] = {"type": kind}
    column = rule.get("column")
    if "column" in fields and (column is not None or kind != "drift_psi"):
        if column not in columns:
            known = ", ".join(columns)
            raise InvalidInput(f"{where} ({kind}): no column {column!r} (columns: {known})")
        out["column"] = column
    for bound in ("min", "max"):
        if bound in fields and rule.get(bound) is not None:
            out[bound] = _number(rule[bound], f"{where} ({kind}): '{bound}'")
    if kind in ("range", "row_count") and "min" not in out and "max" not in out:
        raise InvalidInput(f"{where} ({kind}): give 'min', 'max' or both")
    if kind == "allowed":
        out["values"] = _values(rule.get("values"), where)
    if kind == "drift_psi":
        threshold = _number(rule.get("threshold", DEFAULT_PSI), f"{where} (drift_psi): 'threshold'")
        if threshold <= 0:
            raise InvalidInput(f"{where} (drift_psi): 'threshold' must be more than 0")
        out["threshold"] = threshold
    return out


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number, not {value!r}")
    return value


def _values(values: Any, where: str) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"{where} (allowed): 'values' must be a non-empty list")
    if any(isinstance(v, dict | list) for v in values):
        raise InvalidInput(f"{where} (allowed): values must be strings, numbers or booleans")
    return values


def describe(rule: Mapping[str, Any]) -> str:
    """A short human name of a rule: `range(score, 0..1)`."""
    kind, column = rule["type"], rule.get("column")
    if kind in ("range", "row_count"):
        bounds = f"{rule.get('min', '')}..{rule.get('max', '')}"
        return f"{kind}({column}, {bounds})" if column else f"{kind}({bounds})"
    if kind == "allowed":
        return f"allowed({column} in {', '.join(map(str, rule['values']))})"
    if kind == "drift_psi":
        return f"drift_psi({column or 'every number'} <= {rule['threshold']})"
    return f"{kind}({column})"


# --- checking ------------------------------------------------------------------------------


def check_version(
    ds: lance.LanceDataset, previous: lance.LanceDataset | None, rules: Sequence[Mapping]
) -> dict[str, Any]:
    """Every rule checked against `ds` (drift against `previous`):
    {"version", "passed", "checks": [{"rule", "name", "passed", "failures", "examples", ...}]}."""
    tables: dict[str, object] = {"t": ds}
    if previous is not None:
        tables["prev"] = previous
    con = sandbox(tables)
    try:
        with deadline(con, CHECK_TIMEOUT_S):
            checks = [_check(con, ds, previous, dict(rule)) for rule in rules]
    finally:
        con.close()
    return {
        "version": ds.version,
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
    }


def _check(
    con: duckdb.DuckDBPyConnection,
    ds: lance.LanceDataset,
    previous: lance.LanceDataset | None,
    rule: dict[str, Any],
) -> dict[str, Any]:
    result: dict[str, Any] = {"rule": rule, "name": describe(rule)}
    column = rule.get("column")
    if column is not None and column not in ds.schema.names:
        return {**result, "passed": False, "failures": 0, "detail": f"no column {column!r}"}
    if rule["type"] == "row_count":
        found = _row_count(con, rule)
    elif rule["type"] == "drift_psi":
        found = _drift(con, ds, previous, rule)
    elif rule["type"] == "unique":
        found = _unique(con, _q(str(column)))
    else:
        found = _failing_rows(con, ds, _where(rule, ds.schema.field(column).type))
    return {**result, **found, "passed": found["failures"] == 0}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _where(rule: Mapping[str, Any], kind: pa.DataType) -> str:
    """The SQL condition that is true for the rows that break a per-row rule."""
    col = _q(rule["column"])
    if rule["type"] == "not_null":
        return f"{col} IS NULL"
    if rule["type"] == "range":
        parts = [f"{col} < {rule['min']!r}"] if "min" in rule else []
        parts += [f"{col} > {rule['max']!r}"] if "max" in rule else []
        return " OR ".join(parts)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = ", ".join(_literal(str(v)) for v in rule["values"])
        return f"{col} IS NOT NULL AND {col} NOT IN ({values})"
    values = ", ".join(_literal(str(v).lower()) for v in rule["values"])
    return f"{col} IS NOT NULL AND lower(CAST({col} AS VARCHAR)) NOT IN ({values})"


def _failing_rows(con: duckdb.DuckDBPyConnection, ds: lance.LanceDataset, where: str) -> dict:
    count = con.sql(f"SELECT count(*) FROM t WHERE {where}").fetchall()[0][0]
    shown = [f.name for f in ds.schema if not pa.types.is_binary(f.type)]
    examples: list[dict[str, Any]] = []
    if count and shown:
        cols = ", ".join(_q(c) for c in shown)
        table = con.sql(f"SELECT {cols} FROM t WHERE {where} LIMIT {EXAMPLES}").to_arrow_table()
        examples = [dict(zip(shown, row, strict=True)) for row in table_rows(table)]
    return {"failures": count, "examples": examples}


def _unique(con: duckdb.DuckDBPyConnection, col: str) -> dict:
    repeats = (
        f"SELECT {col} AS value, count(*) AS n FROM t WHERE {col} IS NOT NULL "
        "GROUP BY 1 HAVING count(*) > 1"
    )
    failures = con.sql(f"SELECT coalesce(sum(n), 0) FROM ({repeats})").fetchall()[0][0]
    top = con.sql(f"{repeats} ORDER BY n DESC, value LIMIT {EXAMPLES}").fetchall()
    return {
        "failures": int(failures),
        "examples": [{"value": jsonable(v), "count": n} for v, n in top],
    }


def _row_count(con: duckdb.DuckDBPyConnection, rule: Mapping[str, Any]) -> dict:
    rows = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
    low, high = rule.get("min", -math.inf), rule.get("max", math.inf)
    failed = not low <= rows <= high
    return {"failures": 1 if failed else 0, "rows": rows, "detail": f"{rows} rows"}


def _numeric(ds: lance.LanceDataset) -> list[str]:
    types = pa.types
    return [
        f.name
        for f in ds.schema
        if types.is_integer(f.type) or types.is_floating(f.type) or types.is_decimal(f.type)
    ]


def _drift(
    con: duckdb.DuckDBPyConnection,
    ds: lance.LanceDataset,
    previous: lance.LanceDataset | None,
    rule: Mapping[str, Any],
) -> dict:
    if previous is None:
        return {"failures": 0, "detail": "no previous version to compare with"}
    before = set(_numeric(previous))
    columns = [rule["column"]] if rule.get("column") else _numeric(ds)
    scores = {c: psi(con, c) for c in columns if c in before}
    drifted = {c: s for c, s in scores.items() if s > rule["threshold"]}
    return {
        "failures": len(drifted),
        "psi": scores,
        "examples": [{"column": c, "psi": s} for c, s in drifted.items()][:EXAMPLES],
        "detail": f"against v{previous.version}",
    }


def psi(con: duckdb.DuckDBPyConnection, column: str) -> float:
    """The population stability index of `column` from `prev` to `t`, over 10 bins cut at
    the deciles of `prev` (repeated cut points merged)."""
    value = f"CAST({_q(column)} AS DOUBLE)"
    cuts = con.sql(
        f"SELECT quantile_cont({value}, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) "
        f"FROM prev WHERE {value} IS NOT NULL AND NOT isnan({value})"
    ).fetchall()[0][0]
    if not cuts:
        return 0.0
    edges = sorted(set(cuts))
    old, new = _shares(con, "prev", value, edges), _shares(con, "t", value, edges)
    return round(sum((n - o) * math.log(n / o) for o, n in zip(old, new, strict=True)), 6)


def _shares(con: duckdb.DuckDBPyConnection, table: str, value: str, edges: list[float]) -> list:
    """The share of the values of `table` in each bin; bin i holds values above i edges."""
    bin_of = " + ".join(f"CAST({value} > {e!r} AS INTEGER)" for e in edges)
    counts = dict(
        con.sql(
            f"SELECT {bin_of} AS b, count(*) FROM {table} "
            f"WHERE {value} IS NOT NULL AND NOT isnan({value}) GROUP BY b"
        ).fetchall()
    )
    total = sum(counts.values()) or 1
    return [max(counts.get(i, 0) / total, _EPSILON) for i in range(len(edges) + 1)]


# --- gating --------------------------------------------------------------------------------


def require_valid(catalog: Catalog, project_id: int, where: str, inputs: Mapping[str, str]) -> None:
    """InvalidInput, naming the failed checks, when a pinned dataset input (`dataset:NAME@V`)
    failed its dataset's rules or was never checked although the dataset has rules."""
    for key, ref in inputs.items():
        if not ref.startswith("dataset:"):
            continue
        name, _, version = ref.removeprefix("dataset:").partition("@")
        dataset_id = catalog.dataset_id(project_id, name)
        if not catalog.rules(dataset_id):
            continue
        result = catalog.checks(dataset_id).get(int(version))
        what = f"{where}, input '{key}': {name}@{version}"
        if result is None:
            raise InvalidInput(f"{what} was never checked against its rules; check it first")
        if not result["passed"]:
            checks = [c for c in result["checks"] if not c["passed"]]
            failed = [f"{c['name']}: {c['failures']} failing" for c in checks]
            raise InvalidInput(f"{what} failed its rules ({'; '.join(failed)})")
