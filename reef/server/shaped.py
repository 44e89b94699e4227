"""Typed response bodies: a handler's plain data (store rows, runtime dicts) as the msgspec
Struct its route declares, so that the OpenAPI document describes the answer.

`msgspec.convert` keeps values as they are (the Structs type a number that a form may have
stored whole as `int | float`, so 1 stays 1), leaves out the optional keys an answer did not
have (`UNSET`), and refuses a key the Struct does not declare (the response Structs forbid
unknown fields): a shape that drifts from its declaration fails in the tests instead of
silently losing a key on the wire."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def shaped(kind: type[T], data: Any) -> T:
    """`data` as `kind` (a Struct, or a list of them)."""
    return msgspec.convert(data, kind)


def maybe(kind: type[T], data: Any) -> T | None:
    """`data` as `kind`, or None when it is None (a setting that is off)."""
    return None if data is None else shaped(kind, data)
