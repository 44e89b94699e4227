"""OpenAPI descriptions of answers that are files or streams rather than JSON bodies.

A handler that returns a `Stream` or a `Response` with its own media type (an artifact, a CSV
report, a worker's input) is documented by Litestar as JSON of no particular shape. Passing
`responses=file_answer(...)` to the route decorator documents the success status as the file
it is instead. (Setting `media_type` on the decorator would do that too, but a `Stream` then
takes the decorator's media type over its own.) A download offered in several formats (one
status, several media types, which a ResponseSpec cannot say) takes
`operation_class=in_formats(...)` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType


def file_answer(
    media_type: str, description: str, status_code: int = 200
) -> dict[int, ResponseSpec]:
    """The `responses` of a route whose success answer is a file of `media_type`."""
    return {
        status_code: ResponseSpec(
            data_container=bytes,
            media_type=media_type,
            description=description,
            generate_examples=False,
        )
    }


def in_formats(
    description: str, media_types: Iterable[str], also_json: bool = False
) -> type[Operation]:
    """An Operation class (a route's `operation_class`) whose 200 answer is a file in each of
    `media_types` (beside the JSON body the handler declares, with `also_json`)."""
    binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
    files = {media.split(";")[0]: OpenAPIMediaType(schema=binary) for media in media_types}

    @dataclass
    class InFormats(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                ok.content = {**((ok.content or {}) if also_json else {}), **files}
                ok.description = description

    return InFormats
