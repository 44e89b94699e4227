"""Running the app under uvicorn; Ctrl-C and SIGTERM stop it cleanly (steps are killed)."""

from __future__ import annotations

import uvicorn
from litestar import Litestar

from reef.server.app import create_app
from reef.settings import Settings


def server_for(settings: Settings) -> tuple[Litestar, uvicorn.Server]:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return app, uvicorn.Server(config)


def serve(settings: Settings) -> int:
    _, server = server_for(settings)
    print(
        f"reef: serving {settings.data_dir} at http://{settings.host}:{settings.port}", flush=True
    )
    server.run()
    return 0
