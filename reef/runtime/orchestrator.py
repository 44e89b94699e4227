"""Runs: plan a pipeline into pinned steps, execute them from the queue, advance the DAG,
cancel, and recover after a crash."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from reef.errors import Conflict, NotFound
from reef.pipeline import upstream
from reef.runtime import approvals, usage
from reef.runtime.environment import Environment
from reef.runtime.events import RUN_SETTLED
from reef.runtime.planner import Planner, missing_requirements
from reef.runtime.publish import settle_publish
from reef.runtime.queue import StepQueue
from reef.runtime.sandbox import Sandbox
from reef.runtime.steps import (
    STOPPED,
    Launch,
    ProcessTable,
    ShuttingDown,
    child_env,
    kill_orphans,
    step_dir,
    write_step_file,
)
from reef.store.db import now
from reef.store.people import Principal
from reef.store.runs import Run, Step
from reef.store.status import ACTIVE, UNSUCCESSFUL, Status, settled_status

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.runtime.gpus import GpuPool
    from reef.runtime.registry import ModelService
    from reef.runtime.webhooks import WebhookService

log = logging.getLogger("reef.runs")
GPU_WAIT_S = 1.0  # how soon a step waiting for GPUs asks again
RETRY_DELAY_S = 2.0  # a step's n-th automatic retry waits n times this


class StepRefused(Exception):
    """A step that must not start (e.g. its requirements are missing); the message says why."""


class Orchestrator:
    """Plans runs, queues their steps, runs them here, and settles each run. It registers
    a succeeded run's models (`models`), asks a worker to stop a step it runs
    (`cancel_remote`), and tells `stores.events` that a run settled (RUN_SETTLED)."""

    def __init__(
        self,
        stores: Stores,
        gpu_pool: GpuPool,
        models: ModelService,
        webhooks: WebhookService,
        cancel_remote: Callable[[int], bool],
    ) -> None:
        self.stores, self.gpu_pool, self.models, self.webhooks = stores, gpu_pool, models, webhooks
        self.cancel_remote = cancel_remote
        self.planner = Planner(stores, gpu_pool)
        self.environment = Environment()
        self.procs = ProcessTable()
        self.sandbox = Sandbox(unsafe=stores.settings.unsafe_steps)
        self._advance_lock = threading.Lock()
        settings = stores.settings
        self.queue = StepQueue(
            settings.path("queue.sqlite"), settings.workers, self.execute, url=settings.queue
        )

    # starting --------------------------------------------------------------------
    def start(
        self,
        project: str,
        pipeline: str | None,
        spec: dict,
        who: Principal,
        rerun_of: int | None = None,
    ) -> int:
        usage.check_quota(self.stores, project)  # QuotaExceeded: this week's GPU hours are used
        self.environment.warm()  # the steps' record needs the machine facts
        planned = self.planner.plan(project, spec, who)
        seed = spec.get("seed", secrets.randbelow(2**31))  # pinned: a re-run uses it again
        pinned = {**spec, "seed": seed, "steps": [p.pinned_spec() for p in planned]}
        project_id = self.stores.projects.get(project).id
        run_id = self.stores.runs.create_run(
            project_id, pipeline, pinned, planned, who.name, rerun_of
        )
        self.stores.audit.record(
            who.name, "run.create", f"run {run_id}", project, pipeline=pipeline
        )
        self.advance(run_id)
        return run_id

    def advance(self, run_id: int) -> None:
        """Queue every pending step whose inputs are ready; settle the run when nothing is left."""
        with self._advance_lock:
            run = self.stores.runs.run(run_id)
            steps = self.stores.runs.steps(run_id)
            state = {s.name: s.status for s in steps}
            if run.finished or not steps:  # a script's run is finished by the script
                return
            for s in steps:
                if s.status != Status.PENDING:
                    continue
                needs = [state[n] for n in upstream(s.inputs)]
                if any(st in UNSUCCESSFUL for st in needs):
                    self.stores.runs.update_step(s.id, status=Status.SKIPPED, finished_at=now())
                    state[s.name] = Status.SKIPPED
                elif all(st == Status.SUCCEEDED for st in needs):
                    self.stores.runs.update_step(s.id, status=Status.QUEUED)
                    self._queue(run, s.id)
                    state[s.name] = Status.QUEUED
            self._settle(run, state)

    def _settle(self, run: Run, state: dict[str, Status]) -> None:
        statuses = set(state.values())
        if statuses & set(ACTIVE):
            if Status.RUNNING in statuses and run.status == Status.QUEUED:
                self.stores.runs.update_run(run.id, status=Status.RUNNING, started_at=now())
            return
        status = settled_status(statuses)
        if status == Status.SUCCEEDED:
            try:
                registered = self.models.register_run(run)
            except Exception as e:  # a failed registration fails the run, visibly
                log.exception("registering the models of run %s failed", run.id)
                status, run_error = Status.FAILED, f"model registration failed: {e}"
                self.stores.runs.update_run(run.id, error=run_error)
            else:
                approvals.after_run(self.stores, self.models, self.webhooks, run, registered)
        status, run = settle_publish(self.stores, run, status)  # step outputs -> dataset versions
        if status == Status.FAILED and self.stores.runs.run(run.id).error is None:
            bad = next(
                (s for s in self.stores.runs.steps(run.id) if s.status == Status.FAILED), None
            )
            error = f"step '{bad.name}' {bad.error or 'failed'}" if bad else "failed"
            self.stores.runs.update_run(run.id, error=error)
        self.stores.runs.update_run(run.id, status=status, finished_at=now())
        self.stores.people.revoke_run_tokens(run.id)
        self.stores.events.emit(RUN_SETTLED, run, status)

    # executing (on a queue consumer thread) -------------------------------------
    def execute(self, step_id: int) -> None:
        claimed = self.claim(step_id)
        if claimed is None:
            return
        run, step = claimed
        runs = self.stores.runs
        if (step.gpus or 0) > len(self.gpu_pool.devices):
            self._lacks_gpus(run, step)
            return
        devices = self.gpu_pool.acquire(step_id, step.gpus or 0)
        if devices is None:  # its GPUs are busy: back in the queue, try again shortly
            self.requeue(run, step_id)
            return
        # it starts now that it holds its GPUs (the claim's stamp came before they were free)
        runs.update_step(step_id, gpu_ids=",".join(devices), started_at=now())
        try:
            launch = self._prepare(run, step, devices)
            proc = self.procs.start(launch)
            runs.update_step(step_id, pid=proc.pid, pid_started=now().timestamp())
            outcome = self.procs.wait(
                launch, proc, lambda points: runs.log_metrics(run.id, step.name, points)
            )
            error = outcome.error or self._check_outputs(step)
        except StepRefused as e:  # the same refusal would come again: no retry
            outcome, error = None, str(e)
            step = replace(step, retries=0)
        except ShuttingDown:  # reef is stopping: failed, or retried at the next start
            outcome, error = None, STOPPED
        except Exception as e:  # preparing the work dir failed: the step fails, the run goes on
            log.exception("step %s could not start", step_id)
            outcome, error = None, f"could not start: {e}"
        ended = now()  # stamped before the GPUs go back, so the next holder starts after it
        self.gpu_pool.release(step_id)
        usage.record(self.stores, run, step, outcome.usage if outcome else None)
        code, cancelled = (outcome.exit_code, outcome.cancelled) if outcome else (None, False)
        self.finish(run, step, error, code, ended, cancelled=cancelled)

    def _lacks_gpus(self, run: Run, step: Step) -> None:
        """A step needing more GPUs than this server lends: with a Redis queue a remote worker
        may lend them (back in the queue); with SQLite none will, so it fails."""
        if self.stores.settings.queue != "sqlite":
            self.requeue(run, step.id)
            return
        have = len(self.gpu_pool.devices)
        error = f"needs {step.gpus} GPU(s); this server lends {have}"
        self.finish(run, replace(step, retries=0), error, None)

    def claim(self, step_id: int) -> tuple[Run, Step] | None:
        """Move a step queued -> running for whoever runs it (a consumer thread here or a
        remote worker); None when it is not to run: cancelled, taken by another consumer, or
        finished from the cache."""
        runs = self.stores.runs
        step = runs.step(step_id)
        if not runs.move_step(step_id, Status.QUEUED, Status.RUNNING, started_at=now()):
            return None
        run = runs.run(step.run_id)
        if run.status == Status.QUEUED:
            runs.update_run(run.id, status=Status.RUNNING, started_at=now())
        if run.spec.get("cache", True) and step.cache_key and self._reuse(run, step):
            self.advance(step.run_id)
            return None
        return run, step

    def requeue(self, run: Run, step_id: int) -> None:
        """A claimed step whose GPUs are busy goes back in the queue, to be tried shortly."""
        self.stores.runs.move_step(step_id, Status.RUNNING, Status.QUEUED, started_at=None)
        self._queue(run, step_id, delay=GPU_WAIT_S)

    def finish(
        self,
        run: Run,
        step: Step,
        error: str | None,
        exit_code: int | None,
        ended: datetime | None = None,
        cancelled: bool = False,
    ) -> None:
        """Settle a step that ran (here or on a worker): its status or an automatic retry,
        then the DAG goes on. `ended` is when it stopped (default: now). A cancelled step
        keeps the error `cancel` gave it (who cancelled it)."""
        if cancelled:
            self.stores.runs.update_step(step.id, status=Status.CANCELLED,
                                      finished_at=ended or now(), exit_code=exit_code)  # fmt: skip
            self.advance(step.run_id)
            return
        status = Status.SUCCEEDED if error is None else Status.FAILED
        if status == Status.FAILED and self._again(run, step, error or "failed"):
            return
        if status == Status.FAILED and step.retries:
            error = f"{error} (attempt {step.attempt + 1} of {step.retries + 1})"
        self.stores.runs.update_step(
            step.id, status=status, error=error, finished_at=ended or now(), exit_code=exit_code
        )
        self.advance(step.run_id)

    def _queue(self, run: Run, step_id: int, delay: float = 0) -> None:
        priority = int(run.spec.get("priority", 0))
        task_id = self.queue.enqueue(step_id, delay=delay, priority=priority)
        self.stores.runs.update_step(step_id, task_id=task_id)

    def _again(self, run: Run, step: Step, error: str) -> bool:
        """Queue a failed step again while it has automatic retries left; the log says why."""
        attempt = step.attempt + 1
        if attempt > step.retries:
            return False
        log_file = self.log_path(run.id, step.name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as f:
            f.write(f"\nreef: attempt {attempt} failed: {error}\n")
            f.write(f"reef: retrying ({attempt} of {step.retries} retries)\n")
        self.stores.runs.update_step(
            step.id,
            status=Status.QUEUED,
            attempt=attempt,
            error=None,
            exit_code=None,
            pid=None,
            started_at=None,
            gpu_ids=None,
        )
        self._queue(run, step.id, delay=RETRY_DELAY_S * attempt)
        return True

    def _reuse(self, run: Run, step: Step) -> bool:
        """Finish `step` with the outputs of an earlier step that had the same cache key."""
        original = self.stores.runs.cached_original(step.cache_key or "", exclude_run=run.id)
        if original is None:
            return False
        src = self.step_dir(original.run_id, original.name) / "outputs"
        if not all(
            _output_ready(Path(_output_path(src, k, kind)), kind)
            for k, kind in step.outputs.items()
        ):
            return False  # its outputs are gone: run the step again
        dst = self.step_dir(run.id, step.name)
        shutil.rmtree(dst / "outputs", ignore_errors=True)
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst / "outputs", copy_function=_link_or_copy)
        (dst / "log.txt").write_text(
            f"reef: cached: reused the outputs of run {original.run_id}, step "
            f"'{original.name}' (same module commit, parameters, inputs and environment)\n"
        )
        self.stores.runs.copy_reports(original, step)
        self.stores.runs.set_record(
            step.id,
            {
                **(original.record or {}),
                "cached_from": {
                    "run_id": original.run_id,
                    "step": original.name,
                    "step_id": original.id,
                },
            },
        )
        self.stores.runs.update_step(
            step.id,
            status=Status.SUCCEEDED,
            finished_at=now(),
            cached_from=original.id,
            exit_code=0,
        )
        return True

    def retry(self, run_id: int, step_name: str, who: Principal) -> None:
        """Run a failed or cancelled step again, with the steps it held back."""
        run = self.stores.runs.run(run_id)
        if not run.finished:
            raise Conflict(f"run {run_id} is still {run.status}; retry once it has finished")
        steps = {s.name: s for s in self.stores.runs.steps(run_id)}
        target = steps.get(step_name)
        if target is None:
            raise NotFound(f"run {run_id} has no step '{step_name}'")
        if target.status not in (Status.FAILED, Status.CANCELLED):
            raise Conflict(
                f"step '{step_name}' {target.status}: only a failed or cancelled "
                "step can be retried"
            )
        again = {step_name} | downstream(steps, step_name)
        for name in again:
            if steps[name].status != Status.SUCCEEDED:
                self.stores.runs.update_step(
                    steps[name].id,
                    status=Status.PENDING,
                    error=None,
                    exit_code=None,
                    pid=None,
                    started_at=None,
                    finished_at=None,
                    task_id=None,
                    cached_from=None,
                    attempt=0,
                )
        self.stores.runs.update_run(run_id, status=Status.QUEUED, error=None, finished_at=None)
        self.stores.audit.record(
            who.name,
            "run.retry",
            f"run {run_id}",
            self.stores.project_name(run.project_id),
            step=step_name,
        )
        self.advance(run_id)

    def _prepare(self, run: Run, step: Step, devices: list[str]) -> Launch:
        """Work dir with the module at its commit, inputs, the step file; env; the record."""
        stores = self.stores
        if refusal := self.sandbox.refusal():
            raise StepRefused(refusal)
        base = self.step_dir(run.id, step.name)
        work, inputs_dir, out_dir = base / "work", base / "inputs", base / "outputs"
        for d in (work, inputs_dir, out_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        project = stores.project_name(run.project_id)
        module_project, module = step.module.split("/", 1)
        manifest = stores.modules.manifest(module_project, module, step.commit_sha)
        if missing := missing_requirements(manifest.requirements):
            raise StepRefused(
                f"requirements not met in this environment: {'; '.join(missing)}. reef does "
                "not install packages at run time: install them where steps run"
            )
        stores.modules.checkout(module_project, module, step.commit_sha, work)
        inputs = {
            k: self._materialize(project, run.id, v, inputs_dir, k) for k, v in step.inputs.items()
        }
        outputs = {k: _output_path(out_dir, k, kind) for k, kind in step.outputs.items()}
        step_file = write_step_file(
            work, {**step_description(project, run, step), "inputs": inputs, "outputs": outputs}
        )
        policy, sandbox_env = self.sandbox.policy(base, list(inputs.values()), stores.settings.port)
        env = child_env(
            {**self.run_env(run, step, project), "REEF_STEP_FILE": str(step_file), **sandbox_env}
        )
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)  # "" hides every GPU from a CPU step
        command = ["python", "-m", "reef.runtime.launch", manifest.entrypoint]
        identity = {**step_identity(run, step, command), "sandbox": self.sandbox.describe()}
        stores.runs.set_record(step.id, self.environment.record(identity, env))
        return Launch(
            step.id,
            work,
            base / "log.txt",
            manifest.entrypoint,
            env,
            step.timeout_s,
            memory_mb=step.memory_mb,
            prefix=self.sandbox.prefix(policy),
        )

    def run_env(self, run: Run, step: Step, project: str) -> dict[str, str]:
        """What reef adds to a step's environment, with a token valid for this run only."""
        owner = self.stores.people.user(run.created_by)
        token = self.stores.people.issue_token(
            owner["id"],
            "run",
            f"run {run.id} step {step.name}",
            run_id=run.id,
            ttl=timedelta(seconds=step.timeout_s + 600),
            step=step.name,  # its metrics are what a model version records: no other step's
        )
        return {
            "REEF_URL": self.stores.settings.url,
            "REEF_TOKEN": token,
            "REEF_PROJECT": project,
            "REEF_RUN_ID": str(run.id),
            "REEF_STEP": step.name,
            "REEF_STEP_ID": str(step.id),
            "REEF_SEED": str(run.spec.get("seed", 0)),
            "REEF_DATA": str(self.stores.settings.data_dir.resolve()),  # whose step it is
        }

    def _materialize(self, project: str, run_id: int, ref: str, inputs_dir: Path, key: str) -> str:
        if ref.startswith("dataset:"):
            name, version = ref.removeprefix("dataset:").split("@")
            dest = inputs_dir / f"{key}.parquet"
            self.stores.datasets.write_parquet(project, name, int(version), dest)
            return str(dest)
        step_name, output = ref.split(".", 1)
        producer = next(s for s in self.stores.runs.steps(run_id) if s.name == step_name)
        return _output_path(
            self.step_dir(run_id, step_name) / "outputs", output, producer.outputs[output]
        )

    def _check_outputs(self, step: Step) -> str | None:
        out_dir = self.step_dir(step.run_id, step.name) / "outputs"
        missing = [
            k
            for k, kind in step.outputs.items()
            if not _output_ready(Path(_output_path(out_dir, k, kind)), kind)
        ]
        return f"did not write its output(s) {', '.join(missing)}" if missing else None

    def step_dir(self, run_id: int, step_name: str) -> Path:
        return step_dir(self.stores.settings, run_id, step_name)

    def log_path(self, run_id: int, step_name: str) -> Path:
        return self.step_dir(run_id, step_name) / "log.txt"

    # control ---------------------------------------------------------------------
    def cancel(self, run_id: int, who: Principal) -> None:
        run = self.stores.runs.run(run_id)
        if run.finished:
            raise Conflict(f"run {run_id} already {run.status}")
        steps, why = self.stores.runs.steps(run_id), f"cancelled by {who.name}"
        for s in steps:  # first what has not started, so nothing downstream starts meanwhile
            if (
                s.status in (Status.PENDING, Status.QUEUED)
                and self.stores.runs.move_step(
                    s.id, s.status, Status.CANCELLED, finished_at=now(), error=why
                )
                and s.task_id
            ):
                self.queue.revoke(s.task_id)
        for s in steps:
            if s.status != Status.RUNNING:
                continue
            self.stores.runs.update_step(s.id, error=why)  # kept when it ends cancelled
            if not self.procs.cancel(s.id):
                self.cancel_remote(s.id)  # a worker's step: it learns on its next call
        self.stores.audit.record(
            who.name, "run.cancel", f"run {run_id}", self.stores.project_name(run.project_id)
        )
        self.advance(run_id)

    def recover(self) -> None:
        """After a crash: queued steps are queued again; steps that were running failed, or
        are queued again when they have automatic retries left."""
        self.queue.flush()
        if self.stores.runs.runs_in((Status.QUEUED, Status.RUNNING)):
            self.environment.warm()
        for s in self.stores.runs.steps_in((Status.QUEUED,)):
            self._queue(self.stores.runs.run(s.run_id), s.id)
        for s in self.stores.runs.steps_in((Status.RUNNING,)):
            killed = kill_orphans(s.id, self.stores.settings.data_dir)
            error = STOPPED + (f" (killed {killed} leftover process(es))" if killed else "")
            if not self._again(self.stores.runs.run(s.run_id), s, error):
                self.stores.runs.update_step(
                    s.id, status=Status.FAILED, finished_at=now(), error=error
                )
        for run in self.stores.runs.runs_in((Status.QUEUED, Status.RUNNING)):
            self.advance(run.id)

    def shutdown(self) -> None:
        """Stop step processes this server started, and mark their steps failed."""
        for step_id in self.procs.kill_all():
            log.info("killed step %s at shutdown", step_id)


def downstream(steps: dict[str, Step], name: str) -> set[str]:
    """Every step that reads, directly or not, from step `name`."""
    found: set[str] = set()
    frontier = {name}
    while frontier:
        frontier = {
            s.name for s in steps.values() if upstream(s.inputs) & frontier and s.name not in found
        }
        found |= frontier
    return found


def step_description(project: str, run: Run, step: Step) -> dict:
    """The step file's content, less the local paths of inputs and outputs."""
    return {
        "project": project,
        "run_id": run.id,
        "step": step.name,
        "module": step.module,
        "commit": step.commit_sha,
        "params": step.params,
        "seed": run.spec.get("seed", 0),
    }


def step_identity(run: Run, step: Step, command: list[str]) -> dict:
    """What a step is, for its reproducibility record (where it ran is added to it)."""
    return {
        "run_id": run.id,
        "step": step.name,
        "module": step.module,
        "commit": step.commit_sha,
        "params": step.params,
        "inputs": step.inputs,
        "seed": run.spec.get("seed"),
        "command": command,
    }


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a cached output (same data dir, no copy); copy where links are refused."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _output_path(out_dir: Path, name: str, kind: str) -> str:
    if kind == "model":
        path = out_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    return str(out_dir / f"{name}.parquet")


def _output_ready(path: Path, kind: str) -> bool:
    if kind == "model":
        return (path / "model.onnx").is_file()
    return path.is_file()
