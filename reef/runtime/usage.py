"""Accounting of device time: measuring a step's process, recording what each step used,
reporting it by person, pipeline, model or project, and the weekly GPU-hour quota.

A step's device time is its GPUs held x the wall time of its process, plus the CPU seconds
(user + system) of its process tree. The process is reaped with `os.wait4`, whose resource
usage covers the step process and every descendant it (or they) waited for: a child
process tree's CPU time, measured exactly once, with no sampling. A worker measures its
steps the same way and reports the numbers with the step's end.

A project's quota is a number of GPU hours per week; weeks start on Monday 00:00 UTC. A run
that would start while the project has used its quota this week is refused.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from reef.errors import InvalidInput, ReefError
from reef.store.db import now
from reef.store.usage import GROUPS, PERIODS, StepUsage, UsageStore

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.store.runs import Run, Step

log = logging.getLogger("reef.usage")
MAX_QUOTA_HOURS = 1e6


class QuotaExceeded(ReefError):
    """The project has used its weekly GPU-hour quota: no run starts until it resets."""

    status = 429


# measuring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float


class Meter:
    """Waits for a step's process with `os.wait4`, keeping the wall time and the CPU time of
    its whole process tree. Use `wait` in place of `Popen.wait`."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.started = time.monotonic()
        self.measured = Measured(0.0, 0.0)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; subprocess.TimeoutExpired after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.proc.returncode is None:
            try:
                pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the exit code, no CPU time
                return self.proc.wait()
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = rusage.ru_utime + rusage.ru_stime
                self.measured = Measured(time.monotonic() - self.started, cpu)
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout or 0)
            time.sleep(0.05)
        return self.proc.returncode


def from_worker(data: Any) -> Measured | None:
    """The `usage` a worker sends with a step's end ({"wall_s": S, "cpu_s": S}); None when
    it sent none (an older worker)."""
    if data is None:
        return None
    try:
        measured = msgspec.convert(data, Measured)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"usage: {e}; send {{'wall_s': seconds, 'cpu_s': seconds}}") from None
    if not (0 <= measured.wall_s < 1e9 and 0 <= measured.cpu_s < 1e9):
        raise InvalidInput("usage: wall_s and cpu_s must be seconds, 0 or more")
    return measured


# recording ---------------------------------------------------------------------------------
def record(
    hub: Stores, run: Run, step: Step, measured: Measured | None, worker: str | None = None
) -> None:
    """Store what one attempt of `step` used (never fails the step: accounting errors are
    logged)."""
    if measured is None:
        return
    try:
        UsageStore(hub.db).add(
            StepUsage(step.id, run.id, run.project_id, run.pipeline, step.name, run.created_by,
                      registered_models(run.spec), worker, step.gpus or 0, measured.wall_s,
                      measured.cpu_s, now())
        )  # fmt: skip
    except Exception:
        log.exception("recording the device time of step %s failed", step.id)


def registered_models(spec: dict) -> str | None:
    names = sorted({str(s["register"]) for s in spec.get("steps", []) if s.get("register")})
    return ", ".join(names) or None


# the quota ---------------------------------------------------------------------------------
def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of `at`'s week (naive UTC, like reef's timestamps)."""
    monday = at.date() - timedelta(days=at.weekday())
    return datetime(monday.year, monday.month, monday.day)


class Quota(msgspec.Struct):
    """A project's weekly GPU-hour quota and this week's use of it."""

    gpu_hours_per_week: float | None  # None: no quota
    used_gpu_hours: float  # this week, since `week_started`
    week_started: datetime
    resets_at: datetime  # the next Monday 00:00 UTC
    over: bool


def quota(hub: Stores, project_id: int, at: datetime | None = None) -> Quota:
    store = UsageStore(hub.db)
    start = week_start(at or now())
    used = store.gpu_seconds_since(project_id, start) / 3600
    limit = store.quota(project_id)
    over = limit is not None and used >= limit
    return Quota(limit, used, start, start + timedelta(days=7), over)


def check_quota(hub: Stores, project: str) -> None:
    """QuotaExceeded, saying which quota, how much is used and when it resets, when the
    project has used its weekly GPU hours."""
    q = quota(hub, hub.projects.get(project).id)
    if q.over:
        raise QuotaExceeded(
            f"project '{project}' has used its weekly GPU-hour quota: {q.used_gpu_hours:.4g} of "
            f"{q.gpu_hours_per_week:g} GPU hours this week. No run starts until the quota "
            f"resets on Monday {q.resets_at:%Y-%m-%d} at 00:00 UTC, or an owner raises it."
        )


def set_quota(hub: Stores, project: str, hours: float | None, who: Any) -> Quota:
    """Set (or with None remove) the project's weekly GPU-hour quota; audited."""
    if hours is not None and not 0 <= hours <= MAX_QUOTA_HOURS:
        raise InvalidInput(
            f"gpu_hours_per_week: give a number of GPU hours from 0 to {MAX_QUOTA_HOURS:g} "
            f"(or null for no quota); got {hours:g}"
        )
    p = hub.projects.get(project)
    before = UsageStore(hub.db).quota(p.id)
    UsageStore(hub.db).set_quota(p.id, hours, who.name)
    hub.audit.record(who.name, "project.quota", f"project {project}", project,
                     gpu_hours_per_week=hours, was=before)  # fmt: skip
    return quota(hub, p.id)


# reporting ---------------------------------------------------------------------------------
class UsageRow(msgspec.Struct):
    """The device time of one group (person, pipeline, model or project) in one period."""

    period: str  # the day, or the Monday that starts the week (YYYY-MM-DD)
    name: str
    gpu_hours: float
    cpu_hours: float
    steps: int


class UsageStep(msgspec.Struct):
    """One attempt of one step."""

    project: str
    run_id: int
    step: str
    person: str
    pipeline: str | None
    models: str | None
    worker: str | None  # None: ran on the server's box
    gpus: int
    wall_s: float
    gpu_s: float
    cpu_s: float
    finished_at: datetime


class UsageReport(msgspec.Struct):
    project: str | None  # None: every project (the admin's view)
    by: str
    period: str
    rows: list[UsageRow]
    totals: list[UsageRow]  # per group over all periods (period: "all")
    steps: list[UsageStep]  # the latest 500 step attempts
    quota: Quota | None


def check_view(by: str, period: str, admin: bool) -> None:
    allowed = [g for g in GROUPS if admin or g != "project"]
    if by not in allowed:
        raise InvalidInput(f"by: '{by}' is not one of {', '.join(allowed)}")
    if period not in PERIODS:
        raise InvalidInput(f"period: '{period}' is not one of {', '.join(PERIODS)}")


def report(hub: Stores, project: str | None, by: str, period: str) -> UsageReport:
    """Usage of one project (or, with None, of all), grouped by `by` and `period`."""
    check_view(by, period, project is None)
    project_id = hub.projects.get(project).id if project else None
    store = UsageStore(hub.db)
    rows = [_row(r) for r in store.totals(project_id, by, period)]
    totals: dict[str, UsageRow] = {}
    for r in rows:
        t = totals.setdefault(r.name, UsageRow("all", r.name, 0.0, 0.0, 0))
        t.gpu_hours, t.cpu_hours, t.steps = (
            t.gpu_hours + r.gpu_hours, t.cpu_hours + r.cpu_hours, t.steps + r.steps)  # fmt: skip
    steps = [msgspec.convert(s, UsageStep) for s in store.steps(project_id)]
    q = quota(hub, project_id) if project_id is not None else None
    ordered = sorted(totals.values(), key=lambda t: (-t.gpu_hours, -t.cpu_hours, t.name))
    return UsageReport(project, by, period, rows, ordered, steps, q)


def _row(r: dict[str, Any]) -> UsageRow:
    return UsageRow(str(r["period"]), str(r["name"]), r["gpu_s"] / 3600, r["cpu_s"] / 3600,
                    int(r["steps"]))  # fmt: skip


def as_csv(rep: UsageReport) -> str:
    """The report's rows as CSV: period, the group, GPU hours, CPU hours, steps."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([rep.period, rep.by, "gpu_hours", "cpu_hours", "steps"])
    for r in rep.rows:
        writer.writerow([r.period, r.name, repr(r.gpu_hours), repr(r.cpu_hours), r.steps])
    return out.getvalue()


def chart(rep: UsageReport, last: int = 30) -> str:
    """Bars of GPU hours (CPU hours where no GPU was used) per period and group, latest
    `last` bars."""
    from reef import charts

    rows = rep.rows[-last:]
    gpu = any(r.gpu_hours for r in rows)
    unit = "GPU hours" if gpu else "CPU hours"
    values = [r.gpu_hours if gpu else r.cpu_hours for r in rows]
    names = [f"{r.period} · {r.name}" for r in rows]
    return charts.bars(f"{unit} by {rep.period} and {rep.by}", names, values)
