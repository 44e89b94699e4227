"""Row filters given as SQL predicates (`label = 'cat' AND score < 0.2`), validated.

The predicate is parsed by DuckDB as the WHERE clause of `SELECT 1 FROM t WHERE ...` and its
syntax tree (`json_serialize_sql`) is walked: only column references, constants,
comparisons, AND/OR/NOT, IS [NOT] NULL, [NOT] IN (list), BETWEEN, LIKE/ILIKE, casts and a
short list of pure scalar functions are accepted. Anything else (a subquery, a table function,
a second statement, ORDER BY or LIMIT smuggled after the predicate) is refused, and every
column must exist. The accepted predicate is then evaluated by DuckDB in the sandbox, so it
has the same dialect as the query page.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from reef.errors import InvalidInput
from reef.store.db import fetched

_CLASSES = {"CONJUNCTION", "COMPARISON", "BETWEEN", "CONSTANT", "CAST", "TYPE"}
_OPERATORS = {
    "OPERATOR_NOT",
    "OPERATOR_IS_NULL",
    "OPERATOR_IS_NOT_NULL",
    "COMPARE_IN",
    "COMPARE_NOT_IN",
    "OPERATOR_COALESCE",
}
_FUNCTIONS = {
    "~~", "!~~", "~~*", "!~~*", "+", "-", "*", "/", "%", "//",
    "lower", "upper", "length", "trim", "abs", "round", "floor", "ceil",
    "starts_with", "ends_with", "contains", "regexp_matches", "isnan", "isinf",
    "year", "month", "day", "date_part",
}  # fmt: skip


def predicate_columns(where: str, columns: list[str]) -> list[str]:
    """The columns `where` reads, after checking it is a plain boolean expression over
    `columns`; InvalidInput says what is wrong."""
    if not where or not where.strip():
        raise InvalidInput("give a filter, for example: label = 'cat'")
    node = _where_clause(where)
    used: list[str] = []
    _check(node, set(columns), used)
    return sorted(set(used))


def _where_clause(where: str) -> dict[str, Any]:
    sql = f"SELECT 1 FROM t WHERE {where}"
    with duckdb.connect(":memory:") as con:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise InvalidInput(f"invalid filter: {exc}") from exc
        if len(statements) != 1:
            raise InvalidInput("the filter must be one expression, not several statements")
        text = fetched(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone())[0]
    tree = json.loads(text)
    if tree.get("error") or len(tree["statements"]) != 1:
        raise InvalidInput(f"invalid filter: {tree.get('error_message', 'not one expression')}")
    node = tree["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or not _only_where(node):
        raise InvalidInput("the filter must be a plain expression over columns")
    return node["where_clause"]


def _only_where(node: dict[str, Any]) -> bool:
    table = node.get("from_table") or {}
    return (
        not node.get("modifiers")
        and not (node.get("cte_map") or {}).get("map")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and node.get("sample") is None
        and table.get("type") == "BASE_TABLE"
        and table.get("table_name") == "t"
    )


def _check(node: Any, columns: set[str], used: list[str]) -> None:
    """Walk every value of the tree (fail closed: any nested expression is checked)."""
    if isinstance(node, list):
        for item in node:
            _check(item, columns, used)
        return
    if not isinstance(node, dict):
        return
    if "class" in node:
        _check_expression(node, columns, used)
        if node["class"] == "COLUMN_REF":
            return
    for value in node.values():
        _check(value, columns, used)


def _check_expression(node: dict[str, Any], columns: set[str], used: list[str]) -> None:
    kind, cls = node.get("type", ""), node.get("class", "")
    if cls == "COLUMN_REF":
        used.append(_column(node, columns))
        return
    allowed = (
        cls in _CLASSES
        or (cls == "OPERATOR" and kind in _OPERATORS)
        or (cls == "FUNCTION" and _allowed_function(node))
    )
    if not allowed:
        raise InvalidInput(f"the filter may not use {_describe(node)}")


def _allowed_function(node: dict[str, Any]) -> bool:
    return (
        node.get("function_name", "").lower() in _FUNCTIONS
        and not node.get("schema")
        and not node.get("distinct")
        and node.get("filter") is None
        and not (node.get("order_bys") or {}).get("orders")
    )


def _column(node: dict[str, Any], columns: set[str]) -> str:
    names = node.get("column_names", [])
    if len(names) != 1 or names[0] not in columns:
        shown = ".".join(names)
        raise InvalidInput(
            f"the filter names no column {shown!r}; the columns are "
            f"{', '.join(map(repr, sorted(columns)))}"
        )
    return names[0]


def _describe(node: dict[str, Any]) -> str:
    if node.get("class") == "FUNCTION":
        return f"the function {node.get('function_name')!r}"
    if node.get("class") == "SUBQUERY":
        return "a subquery"
    return f"a {node.get('class', '?').lower()} expression ({node.get('type', '?')})"
