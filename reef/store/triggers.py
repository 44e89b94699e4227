"""Pipeline triggers in DuckDB: what starts a pipeline by itself (a module push, a new input
dataset version, a cron schedule, a person's click), the events waiting out the debounce
window, each pipeline's guards and pause state, and what started each run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reef.errors import NotFound
from reef.store.db import Database, now

DEFAULT_DEBOUNCE_S = 60.0
KINDS = ("push", "dataset", "cron", "manual")


@dataclass(frozen=True)
class Trigger:
    id: int
    project_id: int
    pipeline: str
    kind: str
    target: str | None  # push: project/module; dataset: its name
    cron: str | None
    timezone: str | None
    enabled: bool
    created_by: str
    created_at: datetime
    last_fired: datetime | None


@dataclass(frozen=True)
class Guards:
    debounce_s: float
    max_row_drop: float | None
    paused_at: datetime | None
    paused_reason: str | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True)
class Event:
    id: int
    trigger_id: int
    project_id: int
    pipeline: str
    kind: str
    ref: str | None
    events: int
    first_at: datetime
    due_at: datetime


_TRIGGER = (
    "id, project_id, pipeline, kind, target, cron, timezone, enabled, created_by, created_at, "
    "last_fired"
)
_EVENT = "id, trigger_id, project_id, pipeline, kind, ref, events, first_at, due_at"
NO_GUARDS = Guards(DEFAULT_DEBOUNCE_S, None, None, None)


class Triggers:
    def __init__(self, db: Database) -> None:
        self.db = db

    # triggers ---------------------------------------------------------------------------
    def add(
        self,
        project_id: int,
        pipeline: str,
        kind: str,
        author: str,
        target: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
    ) -> int:
        rows = self.db.execute(
            "INSERT INTO pipeline_triggers (project_id, pipeline, kind, target, cron, timezone, "
            "enabled, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, true, ?, ?) RETURNING id",
            [project_id, pipeline, kind, target, cron, timezone, author, now()],
        )
        return int(rows[0][0])

    def get(self, project_id: int, pipeline: str, trigger_id: int) -> Trigger:
        row = self.db.one(
            f"SELECT {_TRIGGER} FROM pipeline_triggers "
            "WHERE id = ? AND project_id = ? AND pipeline = ?",
            [trigger_id, project_id, pipeline],
        )
        if row is None:
            raise NotFound(f"pipeline '{pipeline}' has no trigger {trigger_id}")
        return Trigger(**row)

    def of_pipeline(self, project_id: int, pipeline: str) -> list[Trigger]:
        rows = self.db.query(
            f"SELECT {_TRIGGER} FROM pipeline_triggers WHERE project_id = ? AND pipeline = ? "
            "ORDER BY id",
            [project_id, pipeline],
        )
        return [Trigger(**r) for r in rows]

    def enabled(self, kind: str, target: str | None = None) -> list[Trigger]:
        """Every enabled trigger of `kind` (on `target`, when given), in any project."""
        where, params = ("AND target = ?", [target]) if target is not None else ("", [])
        rows = self.db.query(
            f"SELECT {_TRIGGER} FROM pipeline_triggers WHERE enabled AND kind = ? {where} "
            "ORDER BY id",
            [kind, *params],
        )
        return [Trigger(**r) for r in rows]

    def set_enabled(self, trigger_id: int, enabled: bool) -> None:
        self.db.execute(
            "UPDATE pipeline_triggers SET enabled = ? WHERE id = ?", [enabled, trigger_id]
        )

    def mark_fired(self, trigger_id: int, at: datetime) -> None:
        self.db.execute(
            "UPDATE pipeline_triggers SET last_fired = ? WHERE id = ?", [at, trigger_id]
        )

    def delete(self, trigger_id: int) -> None:
        self.db.execute("DELETE FROM pipeline_triggers WHERE id = ?", [trigger_id])

    # guards and pause -------------------------------------------------------------------
    def guards(self, project_id: int, pipeline: str) -> Guards:
        row = self.db.one(
            "SELECT debounce_s, max_row_drop, paused_at, paused_reason FROM pipeline_guards "
            "WHERE project_id = ? AND pipeline = ?",
            [project_id, pipeline],
        )
        return Guards(**row) if row else NO_GUARDS

    def set_guards(
        self, project_id: int, pipeline: str, debounce_s: float, max_row_drop: float | None
    ) -> None:
        g = self.guards(project_id, pipeline)
        self._put(project_id, pipeline, debounce_s, max_row_drop, g.paused_at, g.paused_reason)

    def pause(self, project_id: int, pipeline: str, reason: str) -> None:
        g = self.guards(project_id, pipeline)
        self._put(project_id, pipeline, g.debounce_s, g.max_row_drop, now(), reason)

    def resume(self, project_id: int, pipeline: str) -> None:
        g = self.guards(project_id, pipeline)
        self._put(project_id, pipeline, g.debounce_s, g.max_row_drop, None, None)

    def _put(
        self,
        project_id: int,
        pipeline: str,
        debounce_s: float,
        max_row_drop: float | None,
        paused_at: datetime | None,
        reason: str | None,
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pipeline_guards VALUES (?, ?, ?, ?, ?, ?)",
            [project_id, pipeline, debounce_s, max_row_drop, paused_at, reason],
        )

    # events (debounced) -----------------------------------------------------------------
    def enqueue(self, trigger: Trigger, ref: str | None, at: datetime, window_s: float) -> int:
        """Fold an event into the trigger's pipeline's pending one (a later ref, one more
        event, due `window_s` after this one, at most five windows after the first), or
        start a pending event; returns its id."""
        window = timedelta(seconds=window_s)
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, first_at FROM trigger_events WHERE project_id = ? AND pipeline = ? "
                "AND status = 'pending' ORDER BY id LIMIT 1",
                [trigger.project_id, trigger.pipeline],
            )
            row = cur.fetchone()
            if row is not None:
                due = min(at + window, row[1] + 5 * window)
                cur.execute(
                    "UPDATE trigger_events SET events = events + 1, due_at = ?, kind = ?, "
                    "trigger_id = ?, ref = ? WHERE id = ?",
                    [due, trigger.kind, trigger.id, ref, row[0]],
                )
                return int(row[0])
            cur.execute(
                "INSERT INTO trigger_events (trigger_id, project_id, pipeline, kind, ref, events, "
                "first_at, due_at, status) VALUES (?, ?, ?, ?, ?, 1, ?, ?, 'pending') RETURNING id",
                [trigger.id, trigger.project_id, trigger.pipeline, trigger.kind, ref, at,
                 at + window],
            )  # fmt: skip
            (event_id,) = cur.fetchone() or (None,)
            return int(event_id)

    def due(self, at: datetime) -> list[Event]:
        rows = self.db.query(
            f"SELECT {_EVENT} FROM trigger_events WHERE status = 'pending' AND due_at <= ? "
            "ORDER BY due_at, id",
            [at],
        )
        return [Event(**r) for r in rows]

    def settle(
        self, event_id: int, status: str, run_id: int | None = None, note: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE trigger_events SET status = ?, run_id = ?, note = ? WHERE id = ?",
            [status, run_id, note, event_id],
        )

    def events(self, project_id: int, pipeline: str, limit: int = 20) -> list[dict]:
        return self.db.query(
            "SELECT id, trigger_id, kind, ref, events, first_at, due_at, status, run_id, note "
            "FROM trigger_events WHERE project_id = ? AND pipeline = ? ORDER BY id DESC LIMIT ?",
            [project_id, pipeline, limit],
        )

    # what started a run -----------------------------------------------------------------
    def record_origin(
        self,
        run_id: int,
        kind: str,
        trigger_id: int | None,
        ref: str | None,
        events: int,
        fired_at: datetime,
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO run_origins VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, kind, trigger_id, ref, events, fired_at],
        )

    def origin(self, run_id: int) -> dict | None:
        return self.db.one(
            "SELECT kind, trigger_id, ref, events, fired_at FROM run_origins WHERE run_id = ?",
            [run_id],
        )
