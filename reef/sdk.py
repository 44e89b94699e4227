"""The reef SDK: how module steps, scripts and notebooks talk to a reef server over HTTP.

Inside a step, `reef.step()` returns a StepContext built from the step file the runner wrote
and the environment (REEF_URL, and REEF_TOKEN: a token valid for this run only):

    import reef
    ctx = reef.step()
    data = ctx.input_path("data")          # a Parquet file (dataset input)
    ctx.log_metric("loss", 0.25, step=3)
    ctx.save_model(net, sample_x, feature_names, class_names)   # ONNX export + parity check

From any script or notebook, `reef.init` opens a run to report to (REEF_URL and REEF_TOKEN,
an API token, or url= and token=):

    with reef.init(project="churn", name="baseline", params={"lr": 0.01}) as run:
        for epoch in range(10):
            run.log_metric("loss", loss, step=epoch)

Metric points are buffered and sent in batches by a background thread; a batch that cannot
be delivered (the server restarting, say) is kept and sent again, so no point is lost.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import json
import math
import os
import random
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

FLUSH_POINTS = 5000
FLUSH_SECONDS = 0.5
MAX_BUFFERED = 5_000_000
DELIVERY_DEADLINE_S = 120.0


class ReefClientError(RuntimeError):
    """The server refused a request; the message is the server's (`status`: its HTTP status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """A small HTTP client for the reef API (REEF_URL and REEF_TOKEN by default)."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        url = url or os.environ.get("REEF_URL")
        token = token or os.environ.get("REEF_TOKEN")
        if not url or not token:
            raise ReefClientError("set REEF_URL and REEF_TOKEN, or pass url= and token=")
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            verify=tls_context(),
        )

    def request(self, method: str, path: str, retries: int = 3, **kwargs: Any) -> Any:
        """Send a request; retry connection errors with back-off; raise the server's message."""
        for attempt in range(retries + 1):
            try:
                resp = self.http.request(method, path, **kwargs)
                break
            except httpx.TransportError:
                if attempt == retries:
                    raise
                time.sleep(0.5 * 2**attempt)
        if resp.status_code >= 400:
            raise ReefClientError(
                f"{method} {path}: {resp.status_code} {_detail(resp)}", resp.status_code
            )
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.http.close()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: building it takes ~20 ms, which
    httpx pays for every client (even over plain http), and a script that opens thousands of
    runs, or a test suite that polls servers, would otherwise pay every time."""
    return httpx.create_ssl_context()


def _detail(resp: httpx.Response) -> str:
    try:
        return resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        return resp.text


Point = tuple[str, float | None, int | None, float]  # key, value, step, ts (epoch seconds)


def columns_of(points: list[Point]) -> dict[str, list]:
    """Points as the columns the server takes: a few lists, not an object per point."""
    keys, values, steps, stamps = (list(c) for c in zip(*points, strict=True))
    return {"key": keys, "value": values, "step": steps, "ts": stamps}


class MetricSender:
    """Buffers metric points, (key, value, step, ts) tuples, and posts them in batches from a
    background thread, as columns (one list per field: a few objects for the server to decode
    however many points). A batch the server did not take because it was unreachable stays
    in the buffer and is sent again."""

    def __init__(self, client: Client, path: str, step: str) -> None:
        self.client, self.path, self.step = client, path, step
        self._points: list[Point] = []
        self._cond = threading.Condition()
        self._handed_over = False  # the rest goes with the run's finish: send nothing more
        self._sending = False  # a batch is on its way
        self._flushing = 0  # callers waiting in flush(): send what is buffered now
        self.error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="reef-metrics", daemon=True)
        self._thread.start()

    def add(self, points: list[Point]) -> None:
        with self._cond:
            if len(self._points) + len(points) > MAX_BUFFERED:
                raise ReefClientError(f"more than {MAX_BUFFERED} metric points not yet sent")
            self._points.extend(points)
            if len(self._points) >= FLUSH_POINTS:
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._due, timeout=FLUSH_SECONDS)
                if self._handed_over:
                    return
                batch = self._points[: FLUSH_POINTS * 10]
                self._sending = bool(batch)
            if batch and not self._send(batch):
                time.sleep(0.5)

    def _due(self) -> bool:
        """Whether to send now rather than wait for more points (called under the lock)."""
        full = len(self._points) >= FLUSH_POINTS
        return self._handed_over or full or (self._flushing > 0 and bool(self._points))

    def _send(self, batch: list[Point]) -> bool:
        """Post a batch; False when the server could not be reached (the batch stays)."""
        answered = True
        try:
            self.client.request(
                "POST", self.path, retries=0, json={"step": self.step, "columns": columns_of(batch)}
            )
        except httpx.TransportError:
            answered = False
        except ReefClientError as e:
            self.error = str(e)  # refused: report it, do not resend what will be refused again
        with self._cond:
            if answered:
                del self._points[: len(batch)]
            self._sending = False
            self._cond.notify_all()
        return answered

    def pending(self) -> int:
        with self._cond:
            return len(self._points)

    def flush(self, timeout: float = DELIVERY_DEADLINE_S) -> bool:
        """Wait until every point so far was delivered (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._points and time.monotonic() < deadline:
                    self._cond.wait(timeout=0.1)
            finally:
                self._flushing -= 1
            return not self._points

    def hand_over(self) -> list[Point]:
        """Stop sending and return what is not yet delivered (after any batch on its way has
        arrived or failed), for the caller to deliver with its last request."""
        with self._cond:
            self._handed_over = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._sending)
            rest, self._points = self._points, []
            self._cond.notify_all()
        self._thread.join(timeout=5)
        return rest


class Reporter:
    """What a step and a script run share: params, metrics, artifacts for one run. Metrics
    belong to the step that logs them; a script run's have no step (its name is '')."""

    metric_step: str | None = None  # None: the step's own name

    def __init__(self, client: Client, project: str, run_id: int, step: str) -> None:
        self.client = client
        self.project = project
        self.run_id = int(run_id)
        self._base = f"/api/projects/{project}/runs/{run_id}"
        self._step = step
        metric_step = step if self.metric_step is None else self.metric_step
        self._metrics = MetricSender(client, f"{self._base}/metrics", metric_step)
        self._finished = False
        atexit.register(self.flush)

    def _open(self) -> None:
        """Refuse reports after finish(): they would be buffered and never sent."""
        if self._finished:
            raise ReefClientError(
                f"run {self.run_id} is finished; start a new run (reef.init) to log more"
            )

    def log_params(self, params: dict[str, Any]) -> None:
        self._open()
        self.client.request(
            "POST", f"{self._base}/params", json={"step": self._step, "params": params}
        )

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        self.log_metrics({key: value}, step, timestamp)

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Buffer one point per key (NaN is sent as null), stamped `timestamp` (seconds since
        the epoch, like time.time()) or now: the time it was logged, not the time a batch
        reached the server."""
        self._open()
        ts = time.time() if timestamp is None else float(timestamp)
        step = None if step is None else int(step)
        points = []
        for key, value in metrics.items():
            number = float(value)
            points.append((str(key), None if math.isnan(number) else number, step, ts))
        self._metrics.add(points)

    def flush(self) -> None:
        """Block until every metric point logged so far reached the server."""
        if not self._metrics.flush():
            raise ReefClientError(f"{self._metrics.pending()} metric points could not be sent")
        if self._metrics.error:
            raise ReefClientError(f"the server refused metric points: {self._metrics.error}")

    def log_artifact(self, path: str | Path, name: str | None = None) -> dict:
        self._open()
        path = Path(path)
        with path.open("rb") as f:
            return self.client.request(
                "POST",
                f"{self._base}/artifacts",
                data={"step": self._step, "name": name or path.name},
                files={"file": (path.name, f, "application/octet-stream")},
            )


class StepContext(Reporter):
    """What a step can read (params, inputs) and report (params, metrics, artifacts, models)."""

    def __init__(self, description: dict[str, Any], client: Client) -> None:
        super().__init__(client, description["project"], description["run_id"], description["step"])
        self.description = description
        self.params: dict[str, Any] = description["params"]
        self.seed: int = int(description.get("seed", 0))
        seed_everything(self.seed)

    def input_path(self, name: str) -> Path:
        try:
            return Path(self.description["inputs"][name])
        except KeyError:
            known = ", ".join(self.description["inputs"]) or "none"
            raise KeyError(f"this step has no input '{name}' (inputs: {known})") from None

    def output_path(self, name: str) -> Path:
        try:
            return Path(self.description["outputs"][name])
        except KeyError:
            known = ", ".join(self.description["outputs"]) or "none"
            raise KeyError(f"this step has no output '{name}' (outputs: {known})") from None

    def save_model(
        self,
        model: Any,
        sample_inputs: Any,
        feature_names: list[Any],
        class_names: list[str] | None = None,
        output: str = "model",
        tolerance: float = 1e-4,
        *,
        task: str | None = None,
        target: str | None = None,
    ) -> float:
        """Export a model to ONNX into output `output`, checking parity on the sample: a torch
        nn.Module (torch vs onnxruntime) or a scikit-learn classifier or regressor (vs
        onnxruntime). Raises (and so fails the step) when they disagree beyond tolerance.

        With a pyarrow Table as the sample, `model` is a scikit-learn Pipeline over the frame
        `reef.preprocess.frame` builds and the export takes raw rows (schema.json format 2):
        `feature_names` are then `reef.model_io.Feature`s (or column names, whose roles
        `reef.tasks.column_roles` decides on the sample), `task` and `target` are recorded."""
        import pyarrow as pa

        if isinstance(sample_inputs, pa.Table):
            from reef.runtime.export_raw import export_pipeline

            features = _features(sample_inputs, feature_names)
            result = export_pipeline(
                model,
                sample_inputs,
                self.output_path(output),
                features,
                task=task or ("classification" if class_names else "regression"),
                target=target,
            )
        else:
            from reef.runtime.export import export_model

            result = export_model(
                model,
                sample_inputs,
                self.output_path(output),
                feature_names,
                class_names,
                tolerance=tolerance,
            )
        self.log_metric("onnx_parity_max_abs_diff", result.max_abs_diff)
        return result.max_abs_diff


def _features(sample: Any, features: list[Any]) -> list[Any]:
    """`features` as `reef.model_io.Feature`s: given, or described from the sample's roles."""
    from reef.model_io import Feature, describe_features
    from reef.tasks import column_roles

    if all(isinstance(f, Feature) for f in features):
        return list(features)
    names = [str(f) for f in features]
    roles = {c.name: c.role for c in column_roles(sample.select(names))}
    return describe_features(sample, roles)


class Run(Reporter):
    """A run that a script or notebook reports to; finish it (or use it as a context manager).
    While it is open, a background thread sends a heartbeat every few seconds: the server
    marks a script run failed once it hears nothing for a while (a killed script)."""

    _alive: threading.Event | None = None

    def keep_alive(self, interval: float) -> None:
        self._alive = threading.Event()
        thread = threading.Thread(
            target=self._beat, args=(self._alive, interval), name="reef-heartbeat", daemon=True
        )
        thread.start()

    def _beat(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                reply = self.client.request("POST", f"{self._base}/heartbeat", retries=0)
            except (httpx.TransportError, ReefClientError):
                continue  # the server may be restarting: the next beat tries again
            if reply.get("status") != "running":
                return

    metric_step = ""  # a script run has no steps: its metrics show under their bare keys

    def set_tags(self, tags: dict[str, str]) -> None:
        self._open()
        self.client.request(
            "POST",
            f"{self._base}/params",
            json={"step": "tags", "params": {k: str(v) for k, v in tags.items()}},
        )

    def finish(self, status: str = "succeeded", error: str | None = None) -> None:
        """End the run, delivering the points still buffered with it (one request, retried
        through a server outage as batches are); a second finish() does nothing."""
        if self._finished:
            return
        if self._metrics.error:
            raise ReefClientError(f"the server refused metric points: {self._metrics.error}")
        body: dict[str, Any] = {"status": status, "error": error, "step": self._metrics.step}
        if rest := self._metrics.hand_over():
            body["columns"] = columns_of(rest)
        if self._alive is not None:
            self._alive.set()
        self._deliver_finish(body)
        self._finished = True
        atexit.unregister(self.flush)  # a script may open thousands of runs: let each one go
        self.client.close()

    def _deliver_finish(self, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        for attempt in itertools.count():
            try:
                self.client.request("POST", f"{self._base}/finish", retries=0, json=body)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise ReefClientError(
                        f"run {self.run_id}: the server did not answer for "
                        f"{DELIVERY_DEADLINE_S:.0f} s; its last points and its end were not sent"
                    ) from None
                time.sleep(min(0.5 * 2**attempt, 5.0))
            except ReefClientError as e:
                if attempt and e.status == 409:  # an earlier try got through; its answer did not
                    return
                raise

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if kind is None:
            self.finish()
        else:
            self.finish("failed", f"{kind.__name__}: {exc}")


def init(
    project: str,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    url: str | None = None,
    token: str | None = None,
) -> Run:
    """Open a new run in `project` for a script or notebook to report to."""
    client = Client(url, token)
    created = client.request(
        "POST", f"/api/projects/{project}/runs", json={"name": name, "params": params or {}}
    )
    run = Run(client, project, created["id"], "script")
    run.keep_alive(float(created.get("heartbeat_s") or 60.0))
    return run


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and (when the step imported it) torch's generators."""
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def step() -> StepContext:
    """The context of the step this process runs (from REEF_STEP_FILE)."""
    path = os.environ.get("REEF_STEP_FILE", "reef-step.json")
    try:
        description = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReefClientError(f"no step file at {path}: is this running as a reef step?") from None
    return StepContext(description, Client())
