"""The reef SDK: how a module step (or any script) talks to a reef server over HTTP.

Inside a step, `reef.step()` returns a StepContext built from the step file the runner wrote
and the environment (REEF_URL, REEF_TOKEN: a token that is valid for this run only):

    import reef
    ctx = reef.step()
    data = ctx.input_path("data")          # a Parquet file (dataset input)
    ctx.log_metric("loss", 0.25, step=3)
    ctx.save_model(net, sample_x, feature_names, class_names)   # ONNX export + parity check

Metric points are buffered and sent in batches; the buffer is flushed at exit.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx

FLUSH_POINTS = 500
FLUSH_SECONDS = 1.0


class ReefClientError(RuntimeError):
    """The server refused a request; the message is the server's."""


class Client:
    """A small HTTP client for the reef API (REEF_URL and REEF_TOKEN by default)."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        url = url or os.environ.get("REEF_URL")
        token = token or os.environ.get("REEF_TOKEN")
        if not url or not token:
            raise ReefClientError("set REEF_URL and REEF_TOKEN, or pass url= and token=")
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=60
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
            raise ReefClientError(f"{method} {path}: {resp.status_code} {_detail(resp)}")
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.http.close()


def _detail(resp: httpx.Response) -> str:
    try:
        return resp.json().get("detail", resp.text)
    except (ValueError, AttributeError):
        return resp.text


class StepContext:
    """What a step can read (params, inputs) and report (params, metrics, artifacts, models)."""

    def __init__(self, description: dict[str, Any], client: Client) -> None:
        self.description = description
        self.params: dict[str, Any] = description["params"]
        self.client = client
        self._base = f"/api/projects/{description['project']}/runs/{description['run_id']}"
        self._step = description["step"]
        self._points: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        atexit.register(self.flush)

    @property
    def run_id(self) -> int:
        return int(self.description["run_id"])

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

    def log_params(self, params: dict[str, Any]) -> None:
        self.client.request(
            "POST", f"{self._base}/params", json={"step": self._step, "params": params}
        )

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stamp = time.time()
        with self._lock:
            for key, value in metrics.items():
                number = float(value)
                self._points.append(
                    {
                        "key": key,
                        "value": None if math.isnan(number) else number,
                        "step": step,
                        "ts": stamp,
                    }
                )
            due = (
                len(self._points) >= FLUSH_POINTS
                or time.monotonic() - self._last_flush > FLUSH_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            points, self._points = self._points, []
            self._last_flush = time.monotonic()
        if points:
            self.client.request(
                "POST", f"{self._base}/metrics", json={"step": self._step, "points": points}
            )

    def log_artifact(self, path: str | Path, name: str | None = None) -> dict:
        path = Path(path)
        with path.open("rb") as f:
            return self.client.request(
                "POST",
                f"{self._base}/artifacts",
                data={"step": self._step, "name": name or path.name},
                files={"file": (path.name, f, "application/octet-stream")},
            )

    def save_model(
        self,
        model: Any,
        sample_inputs: Any,
        feature_names: list[str],
        class_names: list[str] | None = None,
        output: str = "model",
        tolerance: float = 1e-4,
    ) -> float:
        """Export a torch model to ONNX into output `output`, checking parity on the sample;
        raises (and so fails the step) when torch and onnxruntime disagree beyond tolerance."""
        from reef.runtime.export import export_torch

        result = export_torch(
            model,
            sample_inputs,
            self.output_path(output),
            feature_names,
            class_names,
            tolerance=tolerance,
        )
        self.log_metric("onnx_parity_max_abs_diff", result.max_abs_diff)
        return result.max_abs_diff


def step() -> StepContext:
    """The context of the step this process runs (from REEF_STEP_FILE)."""
    path = os.environ.get("REEF_STEP_FILE", "reef-step.json")
    try:
        description = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReefClientError(f"no step file at {path}: is this running as a reef step?") from None
    return StepContext(description, Client())
