"""Running the app under uvicorn; Ctrl-C and SIGTERM stop it cleanly (steps are killed)."""

from __future__ import annotations

import gc
from types import FrameType

import uvicorn
from litestar import Litestar

from reef.runtime.sandbox import Sandbox
from reef.server.app import create_app
from reef.settings import Settings


class Server(uvicorn.Server):
    """uvicorn, but a graceful stop on SIGINT/SIGTERM ends with exit code 0: uvicorn would
    re-raise the signal after shutting down. A second Ctrl-C still forces the exit."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def server_for(settings: Settings) -> tuple[Litestar, Server]:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return app, Server(config)


def serve(settings: Settings) -> int:
    _, server = server_for(settings)
    # What start-up built (the app, the imported libraries: ~200k objects) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks all of it.
    gc.collect()
    gc.freeze()
    print(
        f"reef: serving {settings.data_dir} at http://{settings.host}:{settings.port}", flush=True
    )
    print(f"reef: {Sandbox(settings.unsafe_steps).summary()}", flush=True)
    server.run()
    return 0
