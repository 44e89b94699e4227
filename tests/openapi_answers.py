"""Whether the OpenAPI document (the `openapi_doc` fixture) describes an operation's answer,
shared by the typed-response tests (issue 18)."""

from __future__ import annotations

from typing import Any

MLFLOW = ("/api/2.0/", "/api/3.0/", "/ajax-api/")  # MLflow's own wire rules
METHODS = ("get", "post", "put", "patch", "delete")


def described(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An object with properties, an array or union of such, a file; or a map whose values
    have a type (its keys are the caller's own: label columns, metric names)."""
    if "$ref" in schema:
        return described(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    options = schema.get("oneOf") or schema.get("anyOf")
    if options:
        return all(described(doc, o) for o in options if o.get("type") != "null")
    if schema.get("type") == "array":
        return described(doc, schema.get("items", {}))
    values = schema.get("additionalProperties")
    if schema.get("type") == "object" and isinstance(values, dict) and values:
        return described(doc, values) or bool(values.get("type"))
    return bool(schema.get("properties")) or schema.get("format") == "binary"


def answer_described(doc: dict[str, Any], operation: dict[str, Any]) -> bool:
    """Whether a 2xx answer of the operation is described: no body (204), a file or other
    non-JSON media type, or a described JSON schema."""
    for code, response in operation.get("responses", {}).items():
        if not code.startswith("2"):
            continue
        if code == "204":
            return True
        for media, content in (response.get("content") or {}).items():
            if "json" not in media or described(doc, content.get("schema", {})):
                return True
    return False


def api_operations(doc: dict[str, Any], *prefixes: str) -> list[tuple[str, str, dict]]:
    """(METHOD, path, operation) of reef's own API (not MLflow's), under `prefixes` if any."""
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/") and not path.startswith(MLFLOW)
        if not prefixes or path.startswith(prefixes)
        for method, op in item.items()
        if method in METHODS
    ]
