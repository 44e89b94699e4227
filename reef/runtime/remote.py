"""The server's side of steps that a `reef worker` runs on another box.

A worker takes a step id from the shared (Redis) queue and calls the server: `claim` moves
the step queued -> running exactly as a local consumer does (cache check included) and
returns all the worker needs; then it downloads inputs, appends to the step's log, sends
system metrics, uploads outputs and `finish`es, which settles the step through the same path
as a local one. Every call about a step is a heartbeat: a step whose worker stays silent
longer than `--worker-timeout` is failed, so a dead worker never holds a run forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reef.errors import Conflict, InvalidInput, NotFound
from reef.runtime import usage
from reef.runtime.orchestrator import _output_path, step_description, step_identity
from reef.runtime.transfer import ARROW, PARQUET, TAR, arrow_chunks, file_chunks, save, tar_chunks
from reef.store.people import Principal
from reef.store.runs import Run, Step
from reef.store.status import Status
from reef.store.workers import WorkerLeases

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.runtime.orchestrator import Orchestrator

log = logging.getLogger("reef.remote")
MAX_LOG_CHUNK = 4 << 20


@dataclass(frozen=True)
class Held:
    """A running step held by a worker, as seen by one of its calls."""

    run: Run
    step: Step
    project: str


class WorkerCancels:
    """Steps whose worker is asked to stop them: the orchestrator asks (`ask`), the worker
    learns on its next call, and the step's end settles it (`settle`)."""

    def __init__(self, leases: WorkerLeases) -> None:
        self.leases = leases
        self._asked: set[int] = set()
        self._lock = threading.Lock()

    def ask(self, step_id: int) -> bool:
        """Ask the worker running `step_id` to kill it; False when no worker holds it."""
        lease = self.leases.get(step_id)
        if lease is None or not lease.active:
            return False
        with self._lock:
            self._asked.add(step_id)
        return True

    def asked(self, step_id: int) -> bool:
        with self._lock:
            return step_id in self._asked

    def settle(self, step_id: int) -> bool:
        """Forget the step (it ended); whether a cancel had been asked for."""
        with self._lock:
            asked = step_id in self._asked
            self._asked.discard(step_id)
        return asked


class RemoteSteps:
    def __init__(self, stores: Stores, orchestrator: Orchestrator, cancels: WorkerCancels) -> None:
        self.stores, self.orchestrator, self.cancels = stores, orchestrator, cancels
        self.leases = cancels.leases
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # claiming and finishing -----------------------------------------------------
    def claim(self, step_id: int, who: Principal, worker: str, facts: dict) -> dict | None:
        """Take a queued step for `worker`; None when it is not to run (cancelled, taken, or
        finished from the cache)."""
        step = self.stores.runs.step(step_id)
        project = self.stores.project_name(self.stores.runs.run(step.run_id).project_id)
        self.stores.projects.require(project, who, "developer")  # before anything moves
        claimed = self.orchestrator.claim(step_id)
        if claimed is None:
            return None
        run, step = claimed
        self.leases.claim(step_id, worker, who.name)
        try:
            return self._assignment(run, step, project, worker, facts)
        except Exception as e:  # e.g. the module's manifest cannot be read: fail the step
            log.exception("step %s could not be handed to worker %s", step_id, worker)
            self._settle(run, replace(step, retries=0), f"could not start: {e}", None)
            raise

    def _assignment(self, run: Run, step: Step, project: str, worker: str, facts: dict) -> dict:
        module_project, module = step.module.split("/", 1)
        manifest = self.stores.modules.manifest(module_project, module, step.commit_sha)
        command = ["python", "-m", "reef.runtime.launch", manifest.entrypoint]
        record = {**step_identity(run, step, command), **facts, "worker": worker}
        self.stores.runs.set_record(step.id, record)
        env = self.orchestrator.run_env(run, step, project)
        env.pop("REEF_URL")  # the worker's own URL of this server
        return {
            "step_id": step.id,
            "run_id": run.id,
            "step": step.name,
            "module": {"project": module_project, "name": module, "commit": step.commit_sha},
            "entrypoint": manifest.entrypoint,
            "requirements": manifest.requirements,
            "description": step_description(project, run, step),
            "inputs": {k: self._input_format(run, v) for k, v in step.inputs.items()},
            "outputs": step.outputs,
            "timeout_s": step.timeout_s,
            "memory_mb": step.memory_mb,
            "gpus": step.gpus or 0,
            "env": env,
        }

    def release(self, step_id: int, who: Principal) -> None:
        """The worker could not take the step now (its GPUs are busy): queue it again."""
        held = self.held(step_id, who)
        self.leases.drop(step_id)
        self.orchestrator.requeue(held.run, step_id)

    def finish(
        self, step_id: int, who: Principal, error: str | None, exit_code: int | None, final: bool,
        used: usage.Measured | None = None,
    ) -> str:  # fmt: skip
        """The worker's outcome; outputs are checked here, where they were uploaded."""
        held = self.held(step_id, who)
        lease = self.leases.get(step_id)
        usage.record(self.stores, held.run, held.step, used, lease.worker if lease else None)
        if error is None:
            error = self.orchestrator._check_outputs(held.step)
        step = replace(held.step, retries=0) if final else held.step
        self._settle(held.run, step, error, exit_code)
        return self.stores.runs.step(step_id).status

    def _settle(self, run: Run, step: Step, error: str | None, exit_code: int | None) -> None:
        """A step that stopped with an error after a cancel was asked for is cancelled (the
        server decides that, not the worker's error text)."""
        self.leases.end(step.id)
        cancelled = self.cancels.settle(step.id) and error is not None
        self.orchestrator.finish(run, step, error, exit_code, cancelled=cancelled)

    def held(self, step_id: int, who: Principal) -> Held:
        """The step of a worker's call: running, held by a worker, and `who` may run it."""
        step = self.stores.runs.step(step_id)
        run = self.stores.runs.run(step.run_id)
        project = self.stores.project_name(run.project_id)
        self.stores.projects.require(project, who, "developer")
        lease = self.leases.get(step_id)
        if step.status != Status.RUNNING or lease is None or not lease.active:
            raise Conflict(f"step {step_id} is not running on a worker (it is {step.status})")
        self.leases.beat(step_id)
        return Held(run, step, project)

    # what a worker sends while the step runs --------------------------------------
    def append_log(self, step_id: int, who: Principal, offset: int, data: bytes) -> dict:
        """Append to the step's log; `offset` (where this chunk starts) makes a resend
        harmless. Answers the log's size and whether the step was cancelled (or is no longer
        the worker's: failed as silent, or marked failed by a server restart)."""
        held = self._still_held(step_id, who)
        if held is None:
            return {"size": offset + len(data), "cancel": True}
        if len(data) > MAX_LOG_CHUNK:
            raise InvalidInput(f"send the log in chunks of at most {MAX_LOG_CHUNK} bytes")
        path = self.orchestrator.log_path(held.run.id, held.step.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if offset > size:
            raise Conflict(f"the log has {size} bytes; a chunk at offset {offset} leaves a gap")
        if offset + len(data) > size:
            with path.open("ab") as f:
                f.write(data[size - offset :])
            size = offset + len(data)
        return {"size": size, "cancel": self.cancel_requested(step_id)}

    def samples(self, step_id: int, who: Principal, columns: dict[str, list]) -> dict:
        held = self._still_held(step_id, who)
        if held is None:
            return {"cancel": True}
        self.stores.runs.log_metric_columns(held.run.id, held.step.name, columns)
        return {"cancel": self.cancel_requested(step_id)}

    def _still_held(self, step_id: int, who: Principal) -> Held | None:
        """Like `held`, but None for a step that left the worker: it should stop it."""
        try:
            return self.held(step_id, who)
        except Conflict:
            return None

    def cancel_requested(self, step_id: int) -> bool:
        return self.cancels.asked(step_id)

    # inputs and outputs ----------------------------------------------------------
    def _input_format(self, run: Run, ref: str) -> str:
        if ref.startswith("dataset:"):
            return ARROW
        step_name, output = ref.split(".", 1)
        producer = next(s for s in self.stores.runs.steps(run.id) if s.name == step_name)
        return TAR if producer.outputs[output] == "model" else PARQUET

    def input_stream(self, step_id: int, who: Principal, name: str) -> tuple[str, Iterator]:
        """(format, chunks) of input `name`: a dataset at its pinned version as an Arrow
        stream, or an upstream step's output (a Parquet file, or a model dir as a tar)."""
        held = self.held(step_id, who)
        ref = held.step.inputs.get(name)
        if ref is None:
            raise NotFound(f"step '{held.step.name}' has no input '{name}'")
        if ref.startswith("dataset:"):
            dataset, version = ref.removeprefix("dataset:").split("@")
            ds = self.stores.datasets.open(held.project, dataset, int(version))
            return ARROW, arrow_chunks(ds.scanner().to_reader())
        step_name, output = ref.split(".", 1)
        producer = next(s for s in self.stores.runs.steps(held.run.id) if s.name == step_name)
        kind = producer.outputs[output]
        path = Path(_output_path(self._outputs_dir(held.run.id, step_name), output, kind))
        return (TAR, tar_chunks(path)) if kind == "model" else (PARQUET, file_chunks(path))

    def output_target(self, step_id: int, who: Principal, name: str) -> tuple[str, Path]:
        """(format, path) where upload `name` of a held step goes."""
        held = self.held(step_id, who)
        kind = held.step.outputs.get(name)
        if kind is None:
            raise NotFound(f"step '{held.step.name}' has no output '{name}'")
        path = Path(_output_path(self._outputs_dir(held.run.id, held.step.name), name, kind))
        return (TAR if kind == "model" else PARQUET), path

    def store_output(self, fmt: str, chunks: Any, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(chunks, fmt, path)

    def _outputs_dir(self, run_id: int, step_name: str) -> Path:
        return self.orchestrator.step_dir(run_id, step_name) / "outputs"

    # silent workers --------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="reef-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
            self._watchdog = None

    def _watch(self) -> None:
        limit = self.stores.settings.worker_timeout
        while not self._stop.wait(min(5.0, limit / 4)):
            try:
                self.fail_silent(limit)
            except Exception:  # the watchdog must outlive a bad pass
                log.exception("checking for silent workers failed")

    def fail_silent(self, limit: float) -> None:
        for lease in self.leases.silent(limit):
            step = self.stores.runs.step(lease.step_id)
            run = self.stores.runs.run(step.run_id)
            log.warning("worker %s stopped answering about step %s", lease.worker, step.id)
            error = f"worker {lease.worker} stopped answering (silent for over {limit:g} s)"
            self._settle(run, step, error, None)
