"""The app factory: `create_app(settings)` builds the Litestar app; the lifespan opens the hub."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Reference, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

import reef
from reef import metric_help
from reef.hub import Hub
from reef.server import (
    account,
    approvals,
    auth,
    builder,
    comments,
    datasets,
    errors,
    fast_predict,
    git,
    inbox,
    labeling,
    labeling_api,
    live,
    members,
    mlflow_api,
    mlflow_artifacts,
    mlflow_models,
    mlflow_registry,
    model_try,
    models,
    modules,
    pipelines,
    projects,
    queue_page,
    run_table,
    runs,
    sweeps,
    train,
    train_result,
    triggers,
    usage,
    users,
    webhooks,
    wording,
    workers,
)
from reef.server.openapi_page import SwaggerPage
from reef.server.security_headers import SecurityHeaders
from reef.settings import Settings
from reef.store.db import now

PACKAGE = Path(__file__).resolve().parent.parent
MAX_BODY = 32 << 20
SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "token": SecurityScheme(
        type="http", scheme="bearer", description="an API token (the account page makes one)"
    ),
    "password": SecurityScheme(
        type="http", scheme="basic", description="user name and password, or a token as password"
    ),
}
log = logging.getLogger("reef.server")


def create_app(settings: Settings, hub: Hub | None = None) -> Litestar:
    """Build the app. The hub opens at start-up (or is given, already open, by the caller)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        opened = hub if hub is not None else await anyio.to_thread.run_sync(Hub.open, settings)
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
            OwnedRouter(
                path="/",
                route_handlers=[
                    healthz,
                    static_router(),
                    *auth.ROUTES,
                    *projects.ROUTES,
                    *members.ROUTES,
                    *users.ROUTES,
                    *account.ROUTES,
                    *datasets.ROUTES,
                    *labeling_api.ROUTES,
                    *labeling.ROUTES,
                    *modules.ROUTES,
                    *pipelines.ROUTES,
                    *triggers.ROUTES,
                    *approvals.ROUTES,
                    *webhooks.ROUTES,
                    *usage.ROUTES,
                    *builder.ROUTES,
                    *sweeps.ROUTES,
                    *queue_page.ROUTES,
                    *runs.ROUTES,
                    *live.ROUTES,
                    *run_table.ROUTES,
                    *models.ROUTES,
                    *model_try.ROUTES,
                    *train.ROUTES,
                    *train_result.ROUTES,
                    *workers.ROUTES,
                    *mlflow_artifacts.ROUTES,
                    *mlflow_models.ROUTES,
                    *mlflow_registry.ROUTES,
                    *mlflow_api.ROUTES,
                    *comments.ROUTES,
                    *inbox.ROUTES,
                ],
            )
        ],
        lifespan=[lifespan],
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        guards=[auth.access_guard],
        middleware=[auth.AuthMiddleware],
        exception_handlers=errors.HANDLERS,
        cors_config=cors_config(settings),
        before_request=answer_options,
        csrf_config=CSRFConfig(
            secret=secret,
            exclude=["/api/", "/ajax-api/", "/healthz", "/static/", "/schema"],
            cookie_secure=settings.secure_cookies,
        ),
        template_config=TemplateConfig(
            directory=PACKAGE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=partial(template_filters, unsafe_steps=settings.unsafe_steps),
        ),
        plugins=[HTMXPlugin()],
        openapi_config=OpenAPIConfig(
            title="reef",
            version=reef.__version__,
            path="/schema",
            # the UI's "Authorize" button: a token, or user and password (POST /api/tokens)
            components=Components(security_schemes=SECURITY_SCHEMES),
            security=[{"token": []}, {"password": []}],
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"access": "public"}
            ),
            render_plugins=[SwaggerPage()],
        ),
        request_max_body_size=MAX_BODY,
    )
    git.mount(app)  # /git/* goes to dulwich, ahead of the router
    app.asgi_handler = SecurityHeaders(app.asgi_handler)  # every response but fast predicts
    return fast_predict.mount(app, MAX_BODY)  # a warm model's predict skips the middleware


class OwnedRouter(Router):
    """A router registered once, on the app that builds it: the app takes it as it is. Litestar
    deep-copies a router it registers (so one router can serve several apps), and that copy
    of every handler was a fifth of building the app."""

    def __deepcopy__(self, memo: dict[int, Any]) -> OwnedRouter:
        return self


def cors_config(settings: Settings) -> CORSConfig | None:
    """Browsers on the configured origins may call the API with a bearer token; without
    --cors-origins no CORS headers are sent (same-origin only)."""
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return None
    return CORSConfig(allow_origins=origins, allow_headers=["Authorization", "Content-Type"])


def answer_options(request: Request) -> Response | None:
    """OPTIONS: 204 with every method of the path in `Allow` (Litestar's own answer lists
    only the methods of the first handler registered on the path)."""
    if request.method != "OPTIONS":
        return None
    template = request.scope.get("path_template")
    methods = {m for r in request.app.routes if r.path_format == template for m in r.methods}
    allow = ", ".join(sorted(methods | {"OPTIONS"}))
    return Response(None, status_code=204, headers={"Allow": allow})


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


def template_filters(engine: JinjaTemplateEngine, unsafe_steps: bool = False) -> None:
    env = engine.engine
    env.globals["unsafe_steps"] = unsafe_steps  # base.html warns on every page
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if t else ""
    env.filters["ago"] = _ago
    env.filters["seconds"] = lambda s: "" if s is None else f"{s:.1f} s"
    env.filters["short"] = lambda sha: (sha or "")[:10]
    env.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else v
    env.filters["gate_sentence"] = wording.gate_sentence
    env.filters["kind"] = wording.column_kind
    env.filters["main_metrics"] = wording.main_metrics
    env.filters["detail_metrics"] = wording.detail_metrics
    env.globals["explain_metric"] = metric_help.explain
    env.filters["metric_help"] = metric_help.explain
    env.globals["metric_help_texts"] = metric_help.HELP


def _ago(t: datetime | None) -> str:
    if t is None:
        return ""
    s = (now() - t).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return f"{int(s)} s ago"
