"""Script runs that stopped reporting: marked failed after `--script-run-timeout` of silence.

A script run (`reef.init`) is finished by its script; a script that was killed never does.
Every report to a run (a heartbeat, metrics, params, an artifact) marks it seen; the SDK
sends a heartbeat every `interval` seconds while a run is open. Times are kept in memory: at
start-up every running script run counts as seen then, so a restart gives each a full window.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from reef.store.db import now
from reef.store.status import Status

if TYPE_CHECKING:
    from reef.hub import Stores

log = logging.getLogger("reef.runs")


class ScriptRunWatch:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.timeout = stores.settings.script_run_timeout
        self._seen: dict[int, float] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        """How often the SDK sends a heartbeat: well within the timeout, at most once a minute."""
        return min(60.0, self.timeout / 4)

    def touch(self, run_id: int) -> None:
        self._seen[run_id] = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="reef-script-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(min(30.0, self.timeout / 4)):
            try:
                self.fail_silent()
            except Exception:  # the watch must outlive a bad pass
                log.exception("checking for silent script runs failed")

    def fail_silent(self) -> list[int]:
        """Mark failed every running script run silent for longer than the timeout."""
        failed = []
        for run in self.stores.runs.runs_in((Status.RUNNING,)):
            if run.spec.get("steps"):  # a pipeline's run: its steps are watched instead
                continue
            silent = time.monotonic() - self._seen.get(run.id, self._started)
            if silent > self.timeout:
                error = (
                    f"its script stopped reporting: no heartbeat or report for over "
                    f"{self.timeout:g} s"
                )
                self.stores.runs.update_run(
                    run.id, status=Status.FAILED, finished_at=now(), error=error
                )
                self._seen.pop(run.id, None)
                log.warning("script run %s failed: %s", run.id, error)
                failed.append(run.id)
        return failed
