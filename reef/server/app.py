"""The app factory: `create_app(settings)` builds the Litestar app; the lifespan opens the hub."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio
from litestar import Litestar, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

import reef
from reef.hub import Hub
from reef.server import (
    approvals,
    auth,
    builder,
    datasets,
    errors,
    fast_predict,
    git,
    live,
    models,
    modules,
    pipelines,
    projects,
    queue_page,
    run_table,
    runs,
    sweeps,
    triggers,
    webhooks,
    workers,
)
from reef.settings import Settings
from reef.store.db import now

PACKAGE = Path(__file__).resolve().parent.parent
SWAGGER = "/static/swagger-ui-5.32.0"
MAX_BODY = 32 << 20
log = logging.getLogger("reef.server")


def create_app(settings: Settings, hub: Hub | None = None) -> Litestar:
    """Build the app. The hub opens at start-up (or is given, already open, by the caller)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        opened = hub or await anyio.to_thread.run_sync(Hub.open, settings)
        app.state.hub = opened
        if opened.initial_password:
            print(
                f"reef: created user 'admin' with password {opened.initial_password} "
                "(shown once; set REEF_ADMIN_PASSWORD to choose it)",
                flush=True,
            )
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(opened.close)

    secret = Hub.secret_for(settings)
    app = Litestar(
        # One Router: Litestar 2.25 re-registers the handlers already on a path each time
        # another joins it, and wraps sync handlers twice when a path has three or more.
        route_handlers=[
            Router(
                path="/",
                route_handlers=[
                    healthz,
                    static_router(),
                    *auth.ROUTES,
                    *projects.ROUTES,
                    *datasets.ROUTES,
                    *modules.ROUTES,
                    *pipelines.ROUTES,
                    *triggers.ROUTES,
                    *approvals.ROUTES,
                    *webhooks.ROUTES,
                    *builder.ROUTES,
                    *sweeps.ROUTES,
                    *queue_page.ROUTES,
                    *runs.ROUTES,
                    *live.ROUTES,
                    *run_table.ROUTES,
                    *models.ROUTES,
                    *workers.ROUTES,
                ],
            )
        ],
        lifespan=[lifespan],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        guards=[auth.access_guard],
        middleware=[auth.AuthMiddleware],
        exception_handlers=errors.HANDLERS,
        csrf_config=CSRFConfig(secret=secret, exclude=["/api/", "/healthz", "/static/", "/schema"]),
        template_config=TemplateConfig(
            directory=PACKAGE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=template_filters,
        ),
        plugins=[HTMXPlugin()],
        openapi_config=OpenAPIConfig(
            title="reef",
            version=reef.__version__,
            path="/schema",
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"access": "public"}
            ),
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url=f"{SWAGGER}-bundle.js",
                    css_url=f"{SWAGGER}.css",
                    standalone_preset_js_url=f"{SWAGGER}-standalone-preset.js",
                    favicon="<link rel='icon' href='data:,'>",
                    path="/",
                )
            ],
        ),
        request_max_body_size=MAX_BODY,
    )
    git.mount(app)  # /git/* goes to dulwich, ahead of the router
    return fast_predict.mount(app, MAX_BODY)  # a warm model's predict skips the middleware


def provide_hub(state: State) -> Hub:
    return state.hub


@get("/healthz", opt={"access": "public"}, sync_to_thread=False)
def healthz() -> dict:
    return {"status": "ok", "version": reef.__version__}


def static_router():
    return create_static_files_router(
        path="/static",
        directories=[PACKAGE / "static"],
        opt={"access": "public"},
        include_in_schema=False,
    )


def template_filters(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if t else ""
    env.filters["ago"] = _ago
    env.filters["seconds"] = lambda s: "" if s is None else f"{s:.1f} s"
    env.filters["short"] = lambda sha: (sha or "")[:10]
    env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else v


def _ago(t: datetime | None) -> str:
    if t is None:
        return ""
    s = (now() - t).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"
