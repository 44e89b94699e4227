"""Route decorators that carry each handler's access rule, checked by one guard.

`access` is "public", "user" (signed in), "admin", or a project role ("reporter",
"developer", "maintainer", "owner") checked against the `project` path parameter.
`run_token=True` lets a run's step token call the handler for its own run.
Sync handlers run in a worker thread: DuckDB, Lance and git calls block.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import litestar
from litestar import Request
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, Parameter
from litestar.plugins.htmx import HTMXRequest

from reef.hub import Hub

__all__ = [
    "Form",
    "FromPath",
    "FromQuery",
    "HubDep",
    "JSONBody",
    "Multipart",
    "Offset",
    "delete",
    "from_htmx",
    "get",
    "patch",
    "post",
    "put",
]

HubDep = NamedDependency[Hub]  # the hub the lifespan opened (app.state.hub)
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
Multipart = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
Offset = Annotated[
    int, Parameter(ge=0, le=2**53, description="where to start (0 or more)")
]  # bounded: a 64-bit overflow in the stores was a 500


def _route(method: Callable[..., Any]) -> Callable[..., Any]:
    def decorator(path: str, *, access: str, run_token: bool = False, **kwargs: Any) -> Any:
        opt = {"access": access, "run_token": run_token, **kwargs.pop("opt", {})}
        kwargs.setdefault("include_in_schema", path.startswith("/api/"))  # pages: HTML only

        def wrap(fn: Callable[..., Any]) -> Any:
            threaded = {} if inspect.iscoroutinefunction(fn) else {"sync_to_thread": True}
            return method(path, opt=opt, **threaded, **kwargs)(fn)

        return wrap

    return decorator


get = _route(litestar.get)
post = _route(litestar.post)
patch = _route(litestar.patch)
put = _route(litestar.put)
delete = _route(litestar.delete)


def from_htmx(request: Request) -> bool:
    """Whether htmx sent the request: the app's HTMX plugin makes every request an
    HTMXRequest, whose `htmx` reads its headers (for code that takes any Request)."""
    return isinstance(request, HTMXRequest) and bool(request.htmx)
