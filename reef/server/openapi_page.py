"""The OpenAPI UI at /schema: Swagger UI from vendored files, started by a script file
(`reef-swagger.js`) rather than Litestar's inline script, so it runs under reef's CSP."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

SWAGGER = "/static/swagger-ui-5.32.0"


class SwaggerPage(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            js_url=f"{SWAGGER}-bundle.js",
            css_url=f"{SWAGGER}.css",
            standalone_preset_js_url=f"{SWAGGER}-standalone-preset.js",
            favicon="<link rel='icon' href='data:,'>",
            path="/",
        )

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema["info"]["title"]))
        return f"""<!DOCTYPE html><html><head><title>{title}</title>{self.favicon}
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link href="{self.css_url}" rel="stylesheet">
<script src="{self.js_url}"></script>
<script src="{self.standalone_preset_js_url}"></script>
<script src="/static/reef-swagger.js" defer></script>
</head><body><div id="swagger-container" data-spec-url="/schema/openapi.json"></div>
</body></html>""".encode()
