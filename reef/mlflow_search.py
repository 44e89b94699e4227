"""MLflow's run search grammar, parsed into plain clauses (no SQL here: reef/store turns them
into a query).

A filter is comparisons joined by AND (MLflow has no OR):

    metrics.accuracy > 0.9 and params.model = 'rf' and tags."team name" != 'x'
    attributes.status = 'FINISHED' and attributes.run_name LIKE 'base%'
    params.lr IN ('0.1', '0.01')

Keys take a prefix (`metrics.`/`metric.`, `params.`/`param.`, `tags.`/`tag.`,
`attributes.`/`attribute.`/`attr.`/`run.`; none means an attribute) and may be quoted with
backticks or double quotes. Metrics compare with numbers; params, tags and string attributes
with quoted strings (=, !=, LIKE, ILIKE, IN, NOT IN); times with numbers (milliseconds).
`order_by` entries are `<key> [ASC|DESC]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from reef.errors import InvalidInput

Kind = Literal["metric", "param", "tag", "attribute"]
PREFIXES: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
STRING_ATTRIBUTES = ("run_name", "status", "run_id", "user_id", "artifact_uri", "lifecycle_stage")
NUMBER_ATTRIBUTES = ("start_time", "end_time", "created", "Created")
NUMBER_OPS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")


@dataclass(frozen=True)
class Clause:
    kind: Kind
    key: str
    op: str
    value: float | str | tuple[str, ...]


@dataclass(frozen=True)
class Order:
    kind: Kind
    key: str
    ascending: bool


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of a filter string; InvalidInput saying where it is malformed."""
    if not text or not text.strip():
        return []
    return [_clause(part) for part in _split_and(text)]


def parse_order_by(entries: list[str] | None) -> list[Order]:
    orders = []
    for entry in entries or []:
        words = entry.strip().rsplit(None, 1)
        ascending = True
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            ascending = words[1].upper() == "ASC"
            entry = words[0]
        kind, key = _key(entry.strip())
        orders.append(Order(kind, key, ascending))
    return orders


def _split_and(text: str) -> list[str]:
    """Split on AND outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'`\"":
            quote = ch
        elif re.match(r"\s+and\s+", text[i:], re.IGNORECASE) and current:
            match = re.match(r"\s+and\s+", text[i:], re.IGNORECASE)
            parts.append("".join(current))
            current = []
            i += match.end() if match else 1
            continue
        current.append(ch)
        i += 1
    if quote:
        raise InvalidInput(f"unterminated quote in filter {text!r}")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _clause(text: str) -> Clause:
    m = re.match(
        r"""\s*(?P<key>(?:[A-Za-z_]+\.)?(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.\-/:]+))\s*
        (?P<op>!=|>=|<=|=|>|<|NOT\s+IN|IN|ILIKE|LIKE)\s*(?P<value>.+?)\s*$""",
        text,
        re.IGNORECASE | re.VERBOSE,
    )
    if not m:
        raise InvalidInput(f"cannot parse filter clause {text!r}: expected KEY OP VALUE")
    kind, key = _key(m["key"])
    op = " ".join(m["op"].upper().split())
    value = _value(m["value"], op, text)
    numeric = kind == "metric" or (kind == "attribute" and key in NUMBER_ATTRIBUTES)
    if numeric:
        if op not in NUMBER_OPS or not isinstance(value, float):
            raise InvalidInput(
                f"in {text!r}: {kind} {key!r} compares with a number using {', '.join(NUMBER_OPS)}"
            )
    elif op not in STRING_OPS or isinstance(value, float):
        raise InvalidInput(
            f"in {text!r}: {kind} {key!r} compares with a quoted string using "
            f"{', '.join(STRING_OPS)}"
        )
    if kind == "attribute" and key not in STRING_ATTRIBUTES + NUMBER_ATTRIBUTES:
        raise InvalidInput(f"unknown attribute {key!r} in {text!r}")
    return Clause(kind, key, op, value)


def _key(text: str) -> tuple[Kind, str]:
    prefix, dot, rest = text.partition(".")
    if dot and prefix.lower() in PREFIXES and rest:
        kind, key = PREFIXES[prefix.lower()], rest
    else:
        kind, key = "attribute", text
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        key = key[1:-1]
    if kind == "attribute":
        key = {"run name": "run_name", "created": "start_time", "Created": "start_time"}.get(
            key, key
        )
    if not key:
        raise InvalidInput(f"empty key in {text!r}")
    return kind, key


def _value(text: str, op: str, clause: str) -> float | str | tuple[str, ...]:
    if op in ("IN", "NOT IN"):
        m = re.fullmatch(r"\(\s*(.*?)\s*\)", text)
        if not m:
            raise InvalidInput(f"in {clause!r}: {op} needs a list like ('a', 'b')")
        items = re.findall(r"'((?:[^']|'')*)'|\"([^\"]*)\"", m[1])
        if not items:
            raise InvalidInput(f"in {clause!r}: {op} needs quoted strings")
        return tuple((a or b).replace("''", "'") for a, b in items)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace("''", "'")
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(
            f"in {clause!r}: {text!r} is neither a number nor a quoted string"
        ) from None
