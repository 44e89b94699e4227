"""OpenAPI descriptions of answers that are files or streams rather than JSON bodies.

A handler that returns a `Stream` or a `Response` with its own media type (an artifact, a CSV
report, a worker's input) is documented by Litestar as JSON of no particular shape. Passing
`responses=file_answer(...)` to the route decorator documents the success status as the file
it is instead. (Setting `media_type` on the decorator would do that too, but a `Stream` then
takes the decorator's media type over its own.)
"""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec


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
