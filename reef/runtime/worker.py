"""`reef worker`: runs steps on another box, for a server that shares its Redis queue.

Consumer threads take step ids from the queue (the task `execute_step`, as on the server).
For each, the worker claims the step over HTTP, fetches the module with git (a bare clone per
module, cached, exported at the pinned commit), downloads the inputs, starts the step with the
same launcher as the server (REEF_URL: the server, so the SDK reports there), ships its log
and system metrics while it runs, uploads its outputs and finishes it. The data dir stays on
the server; the worker keeps only its work dir.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reef.errors import ReefError
from reef.runtime.environment import Environment
from reef.runtime.gpus import GpuPool, detect
from reef.runtime.orchestrator import _output_path
from reef.runtime.planner import missing_requirements
from reef.runtime.queue import QueueUnavailable, StepQueue
from reef.runtime.sandbox import Sandbox
from reef.runtime.steps import Launch, ProcessTable, child_env, write_step_file
from reef.runtime.transfer import CHUNK, file_chunks, save, tar_chunks
from reef.runtime.usage import Measured
from reef.sdk import Client, ReefClientError, _detail

log = logging.getLogger("reef.worker")
LOG_EVERY_S = 0.5


class WorkerError(ReefError):
    """The server refused a call, or could not be reached."""


@dataclass(frozen=True)
class WorkerSettings:
    server: str
    token: str
    queue: str
    workers: int = 1
    work_dir: Path = Path("reef-worker")
    gpus: str = "auto"
    unsafe_steps: bool = False  # run steps without the sandbox
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


class ServerAPI(Client):
    """The worker API of one server, with the worker's token."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, retries: int = 3, **kwargs: Any) -> Any:
        try:
            return self.request(method, path, retries=retries, **kwargs)
        except httpx.TransportError as e:
            raise WorkerError(f"cannot reach the server at {self.url}: {e}") from None
        except ReefClientError as e:
            raise WorkerError(str(e)) from None

    def step(self, step_id: int, what: str, **kwargs: Any) -> Any:
        return self.call("POST", f"/api/worker/steps/{step_id}/{what}", **kwargs)

    def download(self, step_id: int, name: str, dest_dir: Path) -> Path:
        """Input `name` into `dest_dir`: a Parquet file (datasets and tables) or a dir."""
        path = f"/api/worker/steps/{step_id}/inputs/{name}"
        with self.http.stream("GET", path) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise WorkerError(f"GET {path}: {resp.status_code} {_detail(resp)}")
            fmt = resp.headers["x-reef-format"]
            dest = dest_dir / (name if fmt == "tar" else f"{name}.parquet")
            save(resp.iter_bytes(CHUNK), fmt, dest)
        return dest

    def upload(self, step_id: int, name: str, chunks: Iterator[bytes]) -> None:
        self.call("PUT", f"/api/worker/steps/{step_id}/outputs/{name}", retries=0, content=chunks)


class ModuleCache:
    """A bare clone of each module the worker ran, fetched again only for unknown commits."""

    def __init__(self, root: Path, server: str, token: str) -> None:
        self.root, self.server = root, server.rstrip("/")
        self.env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "1",  # the token goes in a header, never into a config file
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}",
        }
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def export(self, module: dict, dest: Path) -> None:
        """The module's files at `module["commit"]` into `dest` (no .git)."""
        repo = self.root / module["project"] / f"{module['name']}.git"
        with self._lock(repo):
            if not repo.exists():
                url = f"{self.server}/git/{module['project']}/{module['name']}.git"
                self._git("clone", "--quiet", "--bare", url, str(repo))
            elif not self._has(repo, module["commit"]):
                self._git("-C", str(repo), "fetch", "--quiet", "origin", "+refs/*:refs/*")
        archive = subprocess.Popen(
            ["git", "-C", str(repo), "archive", "--format=tar", module["commit"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tf:
            tf.extractall(dest, filter="data")
        if archive.wait() != 0:
            said = archive.stderr.read().decode().strip() if archive.stderr else ""
            raise WorkerError(f"git archive failed: {said}")

    def _has(self, repo: Path, commit: str) -> bool:
        probe = ["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"]
        return subprocess.run(probe, capture_output=True, env=self.env).returncode == 0

    def _git(self, *args: str) -> None:
        done = subprocess.run(["git", *args], capture_output=True, text=True, env=self.env)
        if done.returncode != 0:
            raise WorkerError(f"git {args[0]} failed: {done.stderr.strip()}")

    def _lock(self, repo: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo, threading.Lock())


class LogShipper:
    """Sends the step's new log bytes to the server every half second; the replies say
    whether the step was cancelled, and then `on_cancel` runs once."""

    def __init__(self, api: ServerAPI, step_id: int, path: Path, on_cancel: Any) -> None:
        self.api, self.step_id, self.path, self.on_cancel = api, step_id, path, on_cancel
        self.offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reef-log", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(LOG_EVERY_S):
            self.ship()

    def ship(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read(CHUNK)
        except FileNotFoundError:
            return
        if not data:
            return
        try:
            reply = self.api.step(self.step_id, "log", params={"offset": self.offset}, content=data)
        except WorkerError as e:
            log.warning("step %s: log not delivered: %s", self.step_id, e)
            return
        self.offset = reply["size"]
        if reply.get("cancel"):
            self.on_cancel()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for _ in range(100):  # the rest, in chunks
            before = self.offset
            self.ship()
            if self.offset == before:
                return


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.api = ServerAPI(settings.server, settings.token)
        self.gpu_pool = GpuPool(detect(settings.gpus))
        self.procs = ProcessTable()
        self.sandbox = Sandbox(unsafe=settings.unsafe_steps)
        self.environment = Environment()
        self.modules = ModuleCache(settings.work_dir / "git", settings.server, settings.token)
        self.queue: StepQueue | None = None

    def check(self) -> str:
        """The user the token belongs to; raises WorkerError when it is refused."""
        return self.api.call("GET", "/api/worker/hello", retries=1)["user"]

    def start(self) -> None:
        threading.Thread(target=self.environment.facts, daemon=True).start()  # warm it up
        queue_file = self.settings.work_dir / "unused.sqlite"
        self.queue = StepQueue(
            queue_file, self.settings.workers, self.execute, url=self.settings.queue
        )
        self.queue.start()

    def stop(self) -> None:
        for step_id in self.procs.kill_all():
            log.info("killed step %s at shutdown", step_id)
        if self.queue is not None:
            self.queue.stop()
        self.api.close()

    # one step --------------------------------------------------------------------
    def execute(self, step_id: int) -> None:
        job = self._claim(step_id)
        if job is None:
            return
        if job["gpus"] > len(self.gpu_pool.devices):  # it would never run here: say so
            have = len(self.gpu_pool.devices)
            refusal = f"needs {job['gpus']} GPU(s); worker {self.settings.name} lends {have}"
            self._finish(step_id, refusal, None, True)
            return
        devices = self.gpu_pool.acquire(step_id, job["gpus"])
        if devices is None:  # busy here: back in the shared queue
            self.api.step(step_id, "release")
            return
        base = self.settings.work_dir / "steps" / str(step_id)
        error: str | None = None
        code: int | None = None
        final = False
        used = None
        try:
            error, code, used = self._run(job, devices, base)
        except _Refused as e:
            error, final = str(e), True
        except Exception as e:  # preparing failed: the step fails, the worker goes on
            log.exception("step %s could not start", step_id)
            error = f"could not start on worker {self.settings.name}: {e}"
        finally:
            self.gpu_pool.release(step_id)
        self._finish(step_id, error, code, final, used)
        shutil.rmtree(base, ignore_errors=True)

    def _claim(self, step_id: int) -> dict | None:
        facts = {**self.environment.facts(), "sandbox": self.sandbox.describe()}
        try:
            job = self.api.step(
                step_id, "claim", json={"worker": self.settings.name, "facts": facts}
            )
        except WorkerError as e:
            log.error("step %s: claim refused: %s", step_id, e)
            return None
        return job if job.get("run") else None

    def _finish(
        self, step_id: int, error: str | None, code: int | None, final: bool,
        used: Measured | None = None,
    ) -> None:  # fmt: skip
        body: dict[str, Any] = {"error": error, "exit_code": code, "final": final}
        if used is not None:  # its device time, accounted on the server
            body["usage"] = {"wall_s": used.wall_s, "cpu_s": used.cpu_s}
        try:
            status = self.api.step(step_id, "finish", retries=8, json=body)["status"]
            log.info("step %s %s", step_id, status)
        except WorkerError as e:
            log.error("step %s: its end could not be reported: %s", step_id, e)

    def _run(
        self, job: dict, devices: list[str], base: Path
    ) -> tuple[str | None, int | None, Measured | None]:
        launch = self._prepare(job, devices, base)
        step_id = job["step_id"]
        proc = self.procs.start(launch)
        shipper = LogShipper(self.api, step_id, launch.log_path, lambda: self.procs.cancel(step_id))
        try:
            outcome = self.procs.wait(launch, proc, lambda points: self._samples(step_id, points))
        finally:
            shipper.close()
        if outcome.error is None:
            self._upload_outputs(job, base / "outputs")
        return outcome.error, outcome.exit_code, outcome.usage

    def _prepare(self, job: dict, devices: list[str], base: Path) -> Launch:
        if refusal := self.sandbox.refusal():
            raise _Refused(f"worker {self.settings.name}: {refusal}")
        if missing := missing_requirements(job["requirements"]):
            raise _Refused(
                f"requirements not met on worker {self.settings.name}: {'; '.join(missing)}. "
                "reef does not install packages at run time: install them where steps run"
            )
        work, inputs_dir, out_dir = base / "work", base / "inputs", base / "outputs"
        for d in (work, inputs_dir, out_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        self.modules.export(job["module"], work)
        step_id = job["step_id"]
        inputs = {k: str(self.api.download(step_id, k, inputs_dir)) for k in job["inputs"]}
        outputs = {k: _output_path(out_dir, k, kind) for k, kind in job["outputs"].items()}
        step_file = write_step_file(
            work, {**job["description"], "inputs": inputs, "outputs": outputs}
        )
        policy, sandbox_env = self.sandbox.policy(base, list(inputs.values()), self.server_port)
        env = child_env(
            {
                **job["env"],
                "REEF_URL": self.api.url,
                "REEF_STEP_FILE": str(step_file),
                "CUDA_VISIBLE_DEVICES": ",".join(devices),
                **sandbox_env,
            }
        )
        return Launch(
            step_id,
            work,
            base / "log.txt",
            job["entrypoint"],
            env,
            job["timeout_s"],
            memory_mb=job.get("memory_mb"),
            prefix=self.sandbox.prefix(policy),
        )

    @property
    def server_port(self) -> int:
        """The one TCP port a sandboxed step may connect to: the server's."""
        url = httpx.URL(self.api.url)
        return url.port or (443 if url.scheme == "https" else 80)

    def _samples(self, step_id: int, points: list[dict]) -> None:
        reply = self.api.step(step_id, "samples", retries=0, json={"points": points})
        if reply.get("cancel"):
            self.procs.cancel(step_id)

    def _upload_outputs(self, job: dict, out_dir: Path) -> None:
        """Every output the step wrote; a missing one is reported by the server's check."""
        for name, kind in job["outputs"].items():
            path = Path(_output_path(out_dir, name, kind))
            if kind == "model" and (path / "model.onnx").is_file():
                self.api.upload(job["step_id"], name, tar_chunks(path))
            elif kind != "model" and path.is_file():
                self.api.upload(job["step_id"], name, file_chunks(path))


class _Refused(Exception):
    """The step cannot run on this worker, and would not on a retry."""


def run_worker(settings: WorkerSettings) -> int:
    """Run until SIGINT or SIGTERM; steps still running are killed and reported failed."""
    worker = Worker(settings)
    try:
        user = worker.check()
    except WorkerError as e:
        print(f"reef worker: cannot start: {e.message}", flush=True)
        worker.api.close()
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        worker.start()
    except QueueUnavailable as e:
        print(f"reef worker: {e.message}", flush=True)
        worker.stop()
        return 2
    print(
        f"reef worker {settings.name}: running steps for {settings.server} as {user} "
        f"({settings.workers} at a time, GPUs: {','.join(worker.gpu_pool.devices) or 'none'}); "
        f"{worker.sandbox.summary()}",
        flush=True,
    )
    while not stop.wait(1):
        pass
    worker.stop()
    return 0
