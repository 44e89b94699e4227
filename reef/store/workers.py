"""Which remote worker holds a running step, and when it last called about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reef.store.db import Database, now
from reef.store.status import Status


@dataclass(frozen=True)
class Lease:
    step_id: int
    worker: str
    claimed_by: str
    claimed_at: datetime
    heartbeat_at: datetime
    active: bool


class WorkerLeases:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, step_id: int, worker: str, user: str) -> None:
        stamp = now()
        self.db.execute(
            "INSERT OR REPLACE INTO step_workers VALUES (?, ?, ?, ?, ?, true)",
            [step_id, worker, user, stamp, stamp],
        )

    def get(self, step_id: int) -> Lease | None:
        row = self.db.one("SELECT * FROM step_workers WHERE step_id = ?", [step_id])
        return Lease(**row) if row else None

    def beat(self, step_id: int) -> None:
        self.db.execute(
            "UPDATE step_workers SET heartbeat_at = ? WHERE step_id = ?", [now(), step_id]
        )

    def end(self, step_id: int) -> None:
        """The step left its worker (finished, or queued again)."""
        self.db.execute("UPDATE step_workers SET active = false WHERE step_id = ?", [step_id])

    def silent(self, limit_s: float) -> list[Lease]:
        """Leases of running steps whose worker has not called for `limit_s` seconds."""
        rows = self.db.query(
            "SELECT w.* FROM step_workers w JOIN steps s ON s.id = w.step_id "
            "WHERE w.active AND s.status = ? AND w.heartbeat_at < ?",
            [Status.RUNNING, now() - timedelta(seconds=limit_s)],
        )
        return [Lease(**r) for r in rows]

    def drop(self, step_id: int) -> None:
        """The worker gave the step back unstarted: it was never its."""
        self.db.execute("DELETE FROM step_workers WHERE step_id = ?", [step_id])

    def of_run(self, run_id: int) -> dict[int, str]:
        """step id -> worker name, for the steps of a run running or ended on a worker (an
        ended lease of a step queued or running again is an earlier attempt's)."""
        rows = self.db.query(
            "SELECT w.step_id, w.worker FROM step_workers w JOIN steps s ON s.id = w.step_id "
            "WHERE s.run_id = ? AND (w.active OR s.status NOT IN (?, ?))",
            [run_id, Status.QUEUED, Status.RUNNING],
        )
        return {r["step_id"]: r["worker"] for r in rows}
