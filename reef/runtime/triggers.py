"""Pipelines that start themselves: triggers (a push to a module's main branch, a new version of
an input dataset, a cron schedule, a person's click), debounced into one run per burst.

Where things happen:
- the git post-receive hook calls `on_push` and the dataset version recorder calls
  `on_dataset_version`; both only *enqueue* an event (they run inside a push or an upload);
- `tick()` (every second, on the service's thread) enqueues due cron triggers and starts
  a run for every event whose debounce window has passed, unless the pipeline is paused.

The clock is injectable (`TriggerService.clock`, naive UTC like the rest of reef's DuckDB
timestamps), so tests drive cron and debounce by calling `tick()` with no real waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reef.errors import Conflict, InvalidInput, ReefError
from reef.runtime.events import ALERT_OPENED, DATASET_VERSION, RUN_SETTLED
from reef.store.db import now
from reef.store.people import Principal
from reef.store.status import Status
from reef.store.triggers import KINDS, Event, Trigger, Triggers

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.runtime.orchestrator import Orchestrator
    from reef.runtime.webhooks import WebhookService

log = logging.getLogger("reef.triggers")
MAIN = "refs/heads/main"
TICK_S = 1.0
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
Clock = Callable[[], datetime]


def check_cron(expr: str) -> str:
    """The expression, or InvalidInput naming the field that is wrong."""
    from croniter import croniter

    fields = expr.split()
    if len(fields) != len(CRON_FIELDS):
        raise InvalidInput(
            f"cron: '{expr}' has {len(fields)} fields; give five: {', '.join(CRON_FIELDS)}"
        )
    for i, field in enumerate(fields):
        alone = " ".join(field if j == i else "*" for j in range(len(fields)))
        if not croniter.is_valid(alone):
            raise InvalidInput(f"cron: the {CRON_FIELDS[i]} field '{field}' of '{expr}' is invalid")
    if not croniter.is_valid(expr):
        raise InvalidInput(f"cron: '{expr}' is not a valid cron expression")
    return " ".join(fields)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = "not a known time zone (e.g. Europe/Paris)"
        raise InvalidInput(f"timezone: '{name}' is {known}") from None
    return name


def next_due(trigger: Trigger) -> datetime:
    """When a cron trigger is next due after its last firing (or its creation), naive UTC."""
    from croniter import croniter

    zone = ZoneInfo(trigger.timezone or "UTC")
    base = (trigger.last_fired or trigger.created_at).replace(tzinfo=UTC).astimezone(zone)
    due: datetime = croniter(trigger.cron, base).get_next(datetime)
    return due.astimezone(UTC).replace(tzinfo=None)


def input_datasets(spec: dict) -> set[str]:
    """The names of the datasets a pipeline spec reads."""
    refs = (str(v) for s in spec.get("steps", []) for v in s.get("inputs", {}).values())
    return {r.removeprefix("dataset:").split("@")[0] for r in refs if r.startswith("dataset:")}


class TriggerService:
    """Starts runs of pipelines when their triggers fire; hears of settled runs and new
    dataset versions through `stores.events`."""

    def __init__(
        self,
        stores: Stores,
        orchestrator: Orchestrator,
        webhooks: WebhookService,
        clock: Clock = now,
    ) -> None:
        self.stores, self.orchestrator, self.webhooks = stores, orchestrator, webhooks
        self.store = Triggers(stores.db)
        stores.events.subscribe(RUN_SETTLED, self.run_settled)
        stores.events.subscribe(DATASET_VERSION, self.on_dataset_version)
        stores.events.subscribe(ALERT_OPENED, self.on_alert)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # managing triggers (API and pages) ----------------------------------------------------
    def add(self, project: str, pipeline: str, who: Principal, kind: str, **given: Any) -> dict:
        """Check and store a trigger; InvalidInput (nothing stored) when it could not fire."""
        p = self.stores.projects.get(project)
        spec = self.stores.runs.pipeline(p.id, pipeline)["spec"]
        if kind not in KINDS:
            raise InvalidInput(f"kind: '{kind}' is not one of {', '.join(KINDS)}")
        fields = self._fields(project, spec, who, kind, given)
        trigger_id = self.store.add(p.id, pipeline, kind, who.name, **fields)
        self.stores.audit.record(
            who.name, "trigger.create", f"pipeline {pipeline}", project, trigger=trigger_id,
            kind=kind, watches=fields,
        )  # fmt: skip
        return self.describe(self.store.get(p.id, pipeline, trigger_id))

    def _fields(
        self, project: str, spec: dict, who: Principal, kind: str, given: dict
    ) -> dict[str, Any]:
        target = (given.get("target") or "").strip()
        if kind == "push":
            return {"target": self._used_module(project, spec, who, target)}
        if kind == "dataset":
            names = input_datasets(spec)
            if target not in names:
                reads = ", ".join(sorted(names)) or "no dataset"
                raise InvalidInput(f"target: the pipeline does not read dataset '{target}' "
                                   f"(it reads {reads})")  # fmt: skip
            return {"target": target}
        if kind == "cron":
            cron = check_cron(given.get("cron") or "")
            return {"cron": cron, "timezone": check_timezone(given.get("timezone") or "UTC")}
        return {}

    def _used_module(self, project: str, spec: dict, who: Principal, target: str) -> str:
        """`target` (MODULE or PROJECT/MODULE) as the PROJECT/MODULE one of the steps runs."""
        used = {s.module for s in self.orchestrator.planner.plan(project, spec, who)}
        found = [m for m in sorted(used) if target in (m, m.split("/", 1)[1])]
        if not target or not found:
            raise InvalidInput(f"target: the pipeline does not use module '{target}' "
                               f"(it uses {', '.join(sorted(used))})")  # fmt: skip
        own = f"{project}/{target}"
        return own if own in found else found[0]

    def set_enabled(
        self, project: str, pipeline: str, trigger_id: int, enabled: bool, who: Principal
    ) -> dict:
        p = self.stores.projects.get(project)
        trigger = self.store.get(p.id, pipeline, trigger_id)
        self.store.set_enabled(trigger.id, enabled)
        action = "trigger.enable" if enabled else "trigger.disable"
        self.stores.audit.record(
            who.name, action, f"pipeline {pipeline}", project, trigger=trigger.id
        )
        return self.describe(self.store.get(p.id, pipeline, trigger_id))

    def delete(self, project: str, pipeline: str, trigger_id: int, who: Principal) -> None:
        p = self.stores.projects.get(project)
        trigger = self.store.get(p.id, pipeline, trigger_id)
        self.store.delete(trigger.id)
        self.stores.audit.record(who.name, "trigger.delete", f"pipeline {pipeline}", project,
                              trigger=trigger.id, kind=trigger.kind)  # fmt: skip

    def listing(self, project: str, pipeline: str) -> dict[str, Any]:
        """The pipeline's triggers, guards, pause state and latest events (page and API)."""
        p = self.stores.projects.get(project)
        self.stores.runs.pipeline(p.id, pipeline)  # NotFound for an unknown pipeline
        guards = self.store.guards(p.id, pipeline)
        return {
            "triggers": [self.describe(t) for t in self.store.of_pipeline(p.id, pipeline)],
            "debounce_s": guards.debounce_s,
            "max_row_drop": guards.max_row_drop,
            "paused": guards.paused,
            "paused_at": guards.paused_at,
            "paused_reason": guards.paused_reason,
            "events": self.store.events(p.id, pipeline),
            "history": self.stores.audit.of_target(project, f"pipeline {pipeline}"),
        }

    def describe(self, t: Trigger) -> dict[str, Any]:
        out = {"id": t.id, "kind": t.kind, "enabled": t.enabled, "created_by": t.created_by,
               "created_at": t.created_at, "target": t.target}  # fmt: skip
        if t.kind == "cron":
            out |= {"cron": t.cron, "timezone": t.timezone, "next_due": next_due(t)}
        return out

    def set_guards(
        self, project: str, pipeline: str, debounce_s: float, max_row_drop: float | None,
        who: Principal,
    ) -> None:  # fmt: skip
        p = self.stores.projects.get(project)
        self.stores.runs.pipeline(p.id, pipeline)  # NotFound for an unknown pipeline
        self.store.set_guards(p.id, pipeline, debounce_s, max_row_drop)
        self.stores.audit.record(who.name, "pipeline.guards", f"pipeline {pipeline}", project,
                              debounce_s=debounce_s, max_row_drop=max_row_drop)  # fmt: skip

    def pause(self, project_id: int, pipeline: str, reason: str) -> None:
        """Pause a pipeline (reef does this itself): no trigger runs it until a resume."""
        if self.store.guards(project_id, pipeline).paused:
            return
        self.store.pause(project_id, pipeline, reason)
        project = self.stores.project_name(project_id)
        self.webhooks.notify("reef", "pipeline.paused", f"pipeline {pipeline}", project,
                              reason=reason)  # fmt: skip
        log.warning("pipeline %s/%s paused: %s", project, pipeline, reason)

    def resume(
        self, project: str, pipeline: str, who: Principal, comment: str, run: bool
    ) -> int | None:
        """A person resumes a paused pipeline, saying why; `run` starts a run at once."""
        p = self.stores.projects.get(project)
        guards = self.store.guards(p.id, pipeline)
        if not guards.paused:
            raise Conflict(f"pipeline '{pipeline}' is not paused")
        if not comment.strip():
            raise InvalidInput("comment: say why the pipeline may run again")
        self.store.resume(p.id, pipeline)
        self.stores.audit.record(who.name, "pipeline.resumed", f"pipeline {pipeline}", project,
                              comment=comment.strip(), was=guards.paused_reason)  # fmt: skip
        return self.run(project, pipeline, who, "resume") if run else None

    # events ------------------------------------------------------------------------------
    def on_push(self, project: str, module: str, ref: str, sha: str | None) -> None:
        """A ref moved in a module repository (inside the push: only enqueue)."""
        if ref != MAIN or sha is None:
            return
        for trigger in self.store.enabled("push", f"{project}/{module}"):
            self._enqueue(trigger, sha)

    def on_dataset_version(
        self,
        project: str,
        name: str,
        version: int,
        produced_by: tuple[int, str] | None,
        validation: dict | None = None,
    ) -> None:
        """A new version of a dataset was recorded: pause the pipelines it breaks, then
        enqueue the dataset triggers on it."""
        p = self.stores.projects.get(project)
        self.guard(p.id, name, version, validation)
        producer = self.stores.runs.run(produced_by[0]).pipeline if produced_by else None
        for trigger in self.store.enabled("dataset", name):
            if trigger.project_id == p.id and trigger.pipeline != producer:  # no self-loop
                self._enqueue(trigger, f"{name}@{version}")

    def guard(self, project_id: int, name: str, version: int, validation: dict | None) -> None:
        """Pause every pipeline with triggers that reads dataset `name`, when `version`
        failed its validation rules or lost more rows than the pipeline allows."""
        readers = [
            pl["name"]
            for pl in self.stores.runs.pipelines(project_id)
            if name in input_datasets(pl["spec"]) and self.store.of_pipeline(project_id, pl["name"])
        ]
        if not readers:
            return
        failed = validation is not None and not validation["passed"]
        if failed:
            checks = [c["name"] for c in validation["checks"] if not c["passed"]]  # type: ignore[index]
            reason = f"dataset {name}@{version} failed its validation rules ({', '.join(checks)})"
            for pipeline in readers:
                self.pause(project_id, pipeline, reason)
            return
        drop = self._row_drop(project_id, name, version)
        for pipeline in readers:
            limit = self.store.guards(project_id, pipeline).max_row_drop
            if drop is not None and limit is not None and drop > limit:
                self.pause(project_id, pipeline, f"dataset {name}@{version} has {drop:.0%} fewer "
                           f"rows than the version before (the limit is {limit:.0%})")  # fmt: skip

    def on_alert(self, project_id: int, model: str, alert: dict) -> None:
        """An alert opened on `model`: pause every pipeline with triggers that trains it."""
        reason = f"model {model} has an open {alert['kind']} alert: {alert['message']}"
        for pl in self.stores.runs.pipelines(project_id):
            trains = {s.get("register") for s in pl["spec"].get("steps", [])}
            if model in trains and self.store.of_pipeline(project_id, pl["name"]):
                self.pause(project_id, pl["name"], reason)

    def _drift(self, event: Event) -> str | None:
        """Why the pipeline must not run: a model it trains has an open (drift) alert."""
        spec = self.stores.runs.pipeline(event.project_id, event.pipeline)["spec"]
        trains = {s["register"] for s in spec.get("steps", []) if s.get("register")}
        open_alerts = [
            a for a in self.stores.models.alerts(event.project_id) if a["model"] in trains
        ]
        if not open_alerts:
            return None
        a = open_alerts[0]
        return f"model {a['model']} has an open {a['kind']} alert: {a['message']}"

    def _row_drop(self, project_id: int, name: str, version: int) -> float | None:
        """The share of rows `version` lost against the version before (None: no before)."""
        dataset_id = self.stores.catalog.dataset_id(project_id, name)
        before = self.stores.catalog.previous_version(dataset_id, version)
        if before is None:
            return None
        old = self.stores.catalog.version(dataset_id, before)
        new = self.stores.catalog.version(dataset_id, version)
        if not old or not new or not old["num_rows"]:
            return None
        return max(0.0, 1 - new["num_rows"] / old["num_rows"])

    def _enqueue(self, trigger: Trigger, ref: str | None) -> None:
        guards = self.store.guards(trigger.project_id, trigger.pipeline)
        window = 0.0 if trigger.kind == "cron" else guards.debounce_s  # a schedule: no burst
        event_id = self.store.enqueue(trigger, ref, self.clock(), window)
        if guards.paused:  # recorded, never run
            self.store.settle(event_id, "skipped", note=f"paused: {guards.paused_reason}")

    def tick(self) -> list[int]:
        """Enqueue the cron triggers that are due, then start the events whose window has
        passed; returns the ids of the runs started."""
        at = self.clock()
        for trigger in self.store.enabled("cron"):
            due = next_due(trigger)
            if due <= at:
                self.store.mark_fired(trigger.id, at)  # missed firings fold into this one
                self._enqueue(trigger, due.isoformat(timespec="minutes"))
        return [run for e in self.store.due(at) if (run := self._dispatch(e)) is not None]

    def _dispatch(self, event: Event) -> int | None:
        guards = self.store.guards(event.project_id, event.pipeline)
        reason = guards.paused_reason if guards.paused else self._drift(event)
        if reason is not None:
            if not guards.paused:
                self.pause(event.project_id, event.pipeline, reason)
            self.store.settle(event.id, "skipped", note=f"paused: {reason}")
            return None
        trigger = self.store.get(event.project_id, event.pipeline, event.trigger_id)
        try:
            run_id = self.start(trigger, event.kind, event.ref, event.events)
        except ReefError as e:
            self.store.settle(event.id, "failed", note=e.message)
            project = self.stores.project_name(event.project_id)
            self.webhooks.notify("reef", "trigger.failed", f"pipeline {event.pipeline}",
                                  project, trigger=trigger.id, error=e.message)  # fmt: skip
            return None
        self.store.settle(event.id, "started", run_id=run_id)
        return run_id

    def start(self, trigger: Trigger, kind: str, ref: str | None, events: int = 1) -> int:
        """Start a run of the trigger's pipeline as the person who set the trigger up."""
        row = self.stores.people.user(trigger.created_by)
        who = Principal(row["id"], row["name"], row["is_admin"], via="trigger")
        return self.run(self.stores.project_name(trigger.project_id), trigger.pipeline, who,
                        kind, trigger.id, ref, events)  # fmt: skip

    def run(
        self,
        project: str,
        pipeline: str,
        who: Principal,
        kind: str,
        trigger_id: int | None = None,
        ref: str | None = None,
        events: int = 1,
    ) -> int:
        """Start a run of the saved pipeline and record what started it."""
        p = self.stores.projects.get(project)
        spec = self.stores.runs.pipeline(p.id, pipeline)["spec"]
        run_id = self.orchestrator.start(project, pipeline, spec, who)
        self.store.record_origin(run_id, kind, trigger_id, ref, events, self.clock())
        return run_id

    def run_settled(self, run: Any, status: Status) -> None:
        """A run ended: note in the audit log how a run that a trigger started ended
        (`run.failed_after_trigger` / `run.finished_after_trigger`, for the inbox)."""
        origin = self.store.origin(run.id)
        if origin is None or origin["kind"] == "manual":
            return
        failed = status == Status.FAILED
        action = "run.failed_after_trigger" if failed else "run.finished_after_trigger"
        self.webhooks.notify("reef", action, f"run {run.id}", self.stores.project_name(
            run.project_id), pipeline=run.pipeline, status=status, trigger=origin["kind"],
            ref=origin["ref"], owner=run.created_by)  # fmt: skip

    def fire(self, project: str, pipeline: str, trigger_id: int, who: Principal) -> int:
        """A person fires a manual trigger (or any trigger) now, skipping the debounce."""
        p = self.stores.projects.get(project)
        trigger = self.store.get(p.id, pipeline, trigger_id)
        if not trigger.enabled:
            raise Conflict(f"trigger {trigger_id} is disabled; enable it first")
        guards = self.store.guards(p.id, pipeline)
        if guards.paused:
            raise Conflict(f"pipeline '{pipeline}' is paused ({guards.paused_reason}); resume it")
        self.stores.audit.record(who.name, "trigger.fire", f"pipeline {pipeline}", project,
                              trigger=trigger.id)  # fmt: skip
        return self.run(project, pipeline, who, "manual", trigger.id)

    # the thread ----------------------------------------------------------------------------
    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reef-triggers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # a bad tick must not stop the triggers for good
                log.exception("the trigger tick failed")
