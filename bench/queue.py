# ruff: noqa: E402  (sys.path is mended before the other imports)
"""Queue benchmark: how fast a queued step starts, and what starting a step process costs,
on the SQLite queue (consumer threads inside `reef serve`) and on the Redis queue (a separate
`reef worker` process; the server runs no step itself).

For each backend it starts a fresh `reef serve` (and redis-server plus `reef worker` for
Redis) and runs a one-step pipeline N times, one after the other, with caching off. The step
is a tiny module whose first act is one SDK call. It reports, p50 and p95 over the N runs:

- enqueue-to-start: the run's creation (the step is queued in the same request) to the step
  moving queued -> running (the consumer picked it up; on Redis, the worker's claim call);
  target: under 50 ms.
- overhead per step: the step process's start (its OS creation time) to its first SDK call
  answered by the server (measured inside the step); target: under 1 s.
- end to end: the run's creation to the run finished.

    python bench/queue.py [--scale small|full]      # small: 10 runs; full: 50 runs
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/queue.py` puts bench/ first on sys.path, where this file would shadow the
# standard library's `queue` for everything imported below: take it off first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results" / "queue.txt"
RUNS = {"small": 10, "full": 50}
TARGETS = {"enqueue_to_start_ms": 50.0, "overhead_ms": 1000.0}

PING_TOML = """name = "ping"
kind = "data-processor"
description = "Benchmark module: one SDK call, then it writes a one-row table."
entrypoint = "main.py"

[outputs]
out = "dataset"
"""
PING_MAIN = """import os
import time


def born() -> float:
    # this process's start, from the kernel's clock-tick count since boot (psutil's
    # create_time() leans on a boot time rounded to the second)
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - (uptime - start)


born = born()
import reef

ctx = reef.step()
ctx.log_params({"hello": 1})  # the first SDK call, answered by the server
answered = time.time()
ctx.log_metric("overhead_s", answered - born)
ctx.flush()
import pyarrow as pa
import pyarrow.parquet as pq

pq.write_table(pa.table({"x": [1]}), ctx.output_path("out"))
"""


def modules_with_ping(work: Path) -> Path:
    from conftest import modules_dir

    dest = modules_dir(work)
    (dest / "ping").mkdir()
    (dest / "ping" / "reef.toml").write_text(PING_TOML)
    (dest / "ping" / "main.py").write_text(PING_MAIN)
    return dest


def start_worker(work: Path, url: str, token: str, queue: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reef.cli", "worker", "--server", url, "--token", token,
           "--queue", queue, "--dir", str(work / "worker"), "--gpus", "none"]  # fmt: skip
    log = (work / "worker.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if "running steps for" in (work / "worker.log").read_text():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"reef worker did not start:\n{(work / 'worker.log').read_text()}")


def one_run(client: httpx.Client) -> dict[str, float]:
    run_id = client.post("/api/projects/bench/pipelines/ping/runs", json={"cache": False})
    run_id.raise_for_status()
    path = f"/api/projects/bench/runs/{run_id.json()['id']}"
    while True:
        state = client.get(path).json()
        if state["run"]["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.02)
    if state["run"]["status"] != "succeeded":
        raise RuntimeError(f"run failed: {state['run']['error']}")
    run, step = state["run"], state["steps"][0]
    created = stamp(run["created_at"])
    return {
        "enqueue_to_start_ms": (stamp(step["started_at"]) - created) * 1000,
        "overhead_ms": state["metrics"]["overhead_s"] * 1000,
        "end_to_end_s": stamp(run["finished_at"]) - created,
    }


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def measure(backend: str, runs: int, work: Path) -> dict[str, list[float]]:
    from conftest import ADMIN_PASSWORD, start_redis, start_server

    redis = worker = None
    extra: tuple = ("--workers", "1", "--gpus", "none")
    if backend == "redis":
        redis, queue = start_redis(work)
        extra = ("--queue", queue, "--workers", "0", "--gpus", "none")
    server = start_server(work / "data", modules_with_ping(work), extra=extra)
    try:
        token = server.token("admin", ADMIN_PASSWORD)
        if redis is not None:
            worker = start_worker(work, server.url, token, queue)
        with server.client(token) as client:
            client.post("/api/projects", json={"name": "bench"}).raise_for_status()
            spec = {"name": "ping", "steps": [{"name": "ping", "module": "library/ping"}]}
            client.post("/api/projects/bench/pipelines", json=spec).raise_for_status()
            one_run(client)  # warm-up: first imports, the worker's first clone
            samples = [one_run(client) for _ in range(runs)]
    finally:
        for proc in (worker, server.proc, redis):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    return {k: [s[k] for s in samples] for k in samples[0]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(results: dict[str, dict[str, list[float]]], runs: int) -> list[str]:
    lines = [
        f"queue benchmark: {runs} one-step runs per backend, one at a time, cache off",
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}",
        "",
        f"{'backend':8} {'metric':22} {'p50':>10} {'p95':>10}  target",
    ]
    units = {"enqueue_to_start_ms": "ms", "overhead_ms": "ms", "end_to_end_s": "s"}
    for backend, metrics in results.items():
        for key, values in metrics.items():
            p50, p95 = statistics.median(values), percentile(values, 0.95)
            target = TARGETS.get(key)
            verdict = (
                ""
                if target is None
                else f"< {target:g} ms: " + ("met" if p50 < target else "MISSED")
            )
            lines.append(
                f"{backend:8} {key:22} {p50:9.1f}{units[key]:>1} {p95:9.1f}{units[key]:>1}  "
                f"{verdict}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(RUNS), default="small")
    parser.add_argument("--backends", default="sqlite,redis")
    args = parser.parse_args()
    runs = RUNS[args.scale]
    results = {}
    for backend in args.backends.split(","):
        if backend == "redis" and not shutil.which("redis-server"):
            print("skipping redis: redis-server is not installed", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix=f"reef-bench-queue-{backend}-") as tmp:
            results[backend] = measure(backend, runs, Path(tmp))
        print(f"{backend}: done", flush=True)
    lines = report(results, runs)
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
