"""Typed request bodies for the handlers that read their body themselves.

Most JSON endpoints declare `data: JSONBody[SomeStruct]`: Litestar decodes and validates the
body with msgspec (a 400 naming the field) and documents it in the OpenAPI schema. A few read
the raw body because it may come in another shape too: a pipeline as YAML, a predict request as
a multipart image upload, a dataset change beside a multipart file. For those, `decode` and
`convert` validate against the same kind of Struct with the same 400s, and `documented` gives
the route an OpenAPI operation that describes the body all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from reef.errors import InvalidInput

T = TypeVar("T")
JSON = "application/json"
MULTIPART = "multipart/form-data"
YAML = "application/yaml"
BYTES = {"application/octet-stream": {"type": "string", "format": "binary"}}


def decode(raw: bytes, kind: type[T]) -> T:
    """`raw` JSON as a `kind`; InvalidInput names the field that is wrong and why."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"invalid body: {e}") from None
    except msgspec.DecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}") from None


def convert(data: Any, kind: type[T]) -> T:
    """Already-parsed data (YAML, a form) as a `kind`, with the same errors as `decode`."""
    try:
        return msgspec.convert(data, type=kind)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"invalid body: {e}") from None


def schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of `kind` with every component inlined (the route's operation carries
    it whole; the document's shared components are Litestar's to fill)."""
    (top,), components = msgspec.json.schema_components([kind], ref_template="{name}")
    return _inline(top, components)


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return _inline(components[node["$ref"]], components)
        # a discriminator maps to component names, gone once inlined; each option still
        # says its own tag value
        return {k: _inline(v, components) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def documented(content: dict[str, Any], description: str | None = None) -> type[Operation]:
    """An Operation class (a route's `operation_class`) whose request body has, per media
    type, the schema of the given type, or a ready JSON schema when given a dict."""
    body = RequestBody(
        required=True,
        description=description,
        content={
            media: OpenAPIMediaType(schema=kind if isinstance(kind, dict) else schema(kind))  # type: ignore[arg-type]
            for media, kind in content.items()
        },
    )

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = self.request_body or body

    return WithBody
