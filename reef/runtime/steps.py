"""Running one step: a child Python process in its own work dir and session, with a time limit.

The runner prepares the work dir (module code at the pinned commit, inputs, a step file the
SDK reads), starts the child, streams its stdout/stderr into the step log, and kills the
whole process tree on time-out or cancel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

import reef
from reef.runtime.sampler import Sampler
from reef.runtime.usage import Measured, Meter

if TYPE_CHECKING:
    from reef.settings import Settings

STEP_FILE = "reef-step.json"
KILL_GRACE_S = 3.0
STOPPED = "reef stopped while this step was running"
log = logging.getLogger("reef.steps")


class ShuttingDown(Exception):
    """reef is stopping: no new step process starts."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one step process."""

    step_id: int
    work_dir: Path
    log_path: Path
    entrypoint: str
    env: dict[str, str]
    timeout_s: float
    memory_mb: int | None = None  # killed when its process tree holds more resident memory
    prefix: tuple[str, ...] = ()  # the sandbox launcher the command runs under, if any


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None
    error: str | None  # None when the step succeeded
    cancelled: bool = False  # someone cancelled it (the error text only describes that)
    usage: Measured | None = None  # its wall time and the CPU time of its process tree


def step_dir(settings: Settings, run_id: int, step_name: str) -> Path:
    """Where a run's step works: its module checkout, inputs, outputs and log."""
    return settings.path("runs", str(run_id), step_name)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEF_")}
    package_root = str(Path(reef.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(PYTHONUNBUFFERED="1", PYTHONHASHSEED="0", REEF_PARENT_PID=str(os.getpid()))
    env.update(extra)
    return env


class ProcessTable:
    """The step processes this server runs, so they can be cancelled or killed at shutdown."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen] = {}
        self._cancelled: set[int] = set()
        self._stopping = False
        self._lock = threading.Lock()

    def start(self, launch: Launch) -> subprocess.Popen:
        """Start the step's process; ShuttingDown once `kill_all` has run (under the same lock,
        so a step is either killed by it or never started)."""
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, launch.log_path.open("ab") as log:
            if self._stopping:
                raise ShuttingDown(STOPPED)
            proc = subprocess.Popen(
                [*launch.prefix, sys.executable, "-m", "reef.runtime.launch", launch.entrypoint],
                cwd=launch.work_dir,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._procs[launch.step_id] = proc
        return proc

    def wait(
        self,
        launch: Launch,
        proc: subprocess.Popen,
        on_sample: Callable[[list[dict]], object] | None = None,
    ) -> Outcome:
        """Wait for the step, killing it at its time limit; system metrics go to `on_sample`;
        the outcome carries the device time it used."""
        meter = Meter(proc)
        outcome = self._wait(launch, meter, on_sample)
        return replace(outcome, usage=meter.measured)

    def _wait(
        self, launch: Launch, meter: Meter, on_sample: Callable[[list[dict]], object] | None
    ) -> Outcome:
        proc = meter.proc
        deadline = time.monotonic() + launch.timeout_s
        sampler = Sampler(proc.pid, launch.env.get("CUDA_VISIBLE_DEVICES"))
        try:
            while True:
                try:
                    code = meter.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if on_sample and sampler.due():
                        _report(on_sample, sampler)
                    if time.monotonic() > deadline:
                        kill_group(proc.pid)
                        meter.wait()
                        return Outcome(None, f"time limit of {launch.timeout_s:g} s exceeded")
                    if launch.memory_mb and (used := tree_rss_mb(proc.pid)) > launch.memory_mb:
                        kill_group(proc.pid)
                        meter.wait()
                        return Outcome(
                            None,
                            f"memory limit of {launch.memory_mb} MiB exceeded "
                            f"(its processes held {used:.0f} MiB)",
                        )
        finally:
            with self._lock:
                self._procs.pop(launch.step_id, None)
                cancelled = launch.step_id in self._cancelled
                self._cancelled.discard(launch.step_id)
        if cancelled and self._stopping:
            return Outcome(code, STOPPED)
        if cancelled:
            return Outcome(code, "cancelled", cancelled=True)
        if code != 0:
            return Outcome(code, f"exited with code {code}: {log_tail(launch.log_path)}")
        return Outcome(0, None)

    def cancel(self, step_id: int) -> bool:
        with self._lock:
            proc = self._procs.get(step_id)
            if proc is None:
                return False
            self._cancelled.add(step_id)
        kill_group(proc.pid)
        return True

    def kill_all(self) -> list[int]:
        with self._lock:
            self._stopping = True
            ids = list(self._procs)
        for step_id in ids:
            self.cancel(step_id)
        return ids


def _report(on_sample: Callable[[list[dict]], object], sampler: Sampler) -> None:
    try:
        on_sample(sampler.sample())
    except Exception:  # metrics must never break a running step
        log.exception("sampling system metrics failed")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            total += p.memory_info().rss
    return total / 2**20


def kill_group(pgid: int) -> None:
    """SIGTERM the step's process group, then SIGKILL whatever is left after a grace period."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(_pgid(p) == pgid and p.status() != psutil.STATUS_ZOMBIE for p in _procs())


def kill_orphans(step_id: int, data_dir: Path) -> int:
    """Kill processes left by a step of an earlier server on the same data dir (found by
    REEF_STEP_ID and REEF_DATA: another reef on this machine has step ids of its own)."""
    killed = 0
    mine = {"REEF_STEP_ID": str(step_id), "REEF_DATA": str(data_dir.resolve())}
    for proc in _procs():
        try:
            env = proc.environ()
            if all(env.get(k) == v for k, v in mine.items()):
                proc.kill()
                killed += 1
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return killed


def _procs() -> list[psutil.Process]:
    return list(psutil.process_iter())


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return None


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    return " | ".join(text[-lines:]) or "(no output)"


def write_step_file(work_dir: Path, description: dict) -> Path:
    path = work_dir / STEP_FILE
    path.write_text(json.dumps(description, indent=2))
    return path
