"""What happened, for whoever wants to know: a run settled, a dataset got a new version.

Publishers (the orchestrator, `new_version`) call `emit`; a subscriber (the trigger service)
subscribes when it is built. Neither holds the other, so the services can be built in one
pass in dependency order with no cycle between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

RUN_SETTLED = "run.settled"  # (run, status)
DATASET_VERSION = "dataset.version"  # (project, name, version, produced_by, validation)
ALERT_OPENED = "model.alert"  # (project_id, model name, alert): monitoring raised an alert


class Events:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[..., None]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, name: str, handler: Callable[..., None]) -> None:
        with self._lock:
            self._subscribers.setdefault(name, []).append(handler)

    def emit(self, name: str, *args: Any) -> None:
        """Call each subscriber in the order it subscribed; an error reaches the caller."""
        with self._lock:
            handlers = list(self._subscribers.get(name, ()))
        for handler in handlers:
            handler(*args)
