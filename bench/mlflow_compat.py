"""MLflow compatibility benchmark: the same unchanged MLflow script (bench/mlflow_workload.py)
against `mlflow server` (SQLite backend, artifacts proxied, in its own venv) and against
`reef serve`, in one run, with the same MLflow client (the MLflow venv's) for both.

For each side: wall time of the whole script per repeat (median and range), the server's
CPU seconds (its process tree) per script, and the time the client spent waiting on the
server: the sum of its HTTP request latencies, in all and per kind of request, measured from
outside the unchanged script by a `sitecustomize` hook (on PYTHONPATH) that times every
`requests.Session.send`. Results go to bench/results/mlflow_compat.txt.

    python bench/mlflow_compat.py [--repeat 5] [--mlflow-venv /tmp/reef-bench-mlflow]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
# bench/ off the path: its scripts (bench/queue.py) must not shadow the stdlib
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
WORKLOAD = ROOT / "bench" / "mlflow_workload.py"
MLFLOW_VERSION = "3.17.2"
PASSWORD = "bench-password"


def mlflow_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = [
        python,
        "-c",
        f"import mlflow, sklearn; assert mlflow.__version__ == '{MLFLOW_VERSION}'",
    ]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [python, "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}", "scikit-learn"]
        subprocess.run(pip, check=True)
    return python


# Loaded at the workload's start (PYTHONPATH): times each HTTP request the client sends and
# appends {"kind", "seconds"} lines to $REEF_BENCH_TIMINGS when the script exits.
TIMING_HOOK = """
import atexit, json, os, time
import requests

_sent, _timings = requests.Session.send, []

def _kind(request):
    path = request.path_url.split("?")[0]
    if path.endswith("/runs/log-batch"):
        return "log-batch"
    if "/mlflow-artifacts/" in path:
        return f"artifacts {request.method}"
    if any(k in path for k in ("/logged-models", "/registered-models", "/model-versions")):
        return "logged model"
    return "other calls"

def _send(self, request, **kw):
    started = time.perf_counter()
    try:
        return _sent(self, request, **kw)
    finally:
        _timings.append({"kind": _kind(request), "seconds": time.perf_counter() - started})

def _write():
    with open(os.environ["REEF_BENCH_TIMINGS"], "a") as f:
        f.write(json.dumps(_timings) + "\\n")

if os.environ.get("REEF_BENCH_TIMINGS"):
    requests.Session.send = _send
    atexit.register(_write)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, proc: subprocess.Popen, path: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not come up")


def start_mlflow(python: Path, work: Path) -> tuple[subprocess.Popen, str, dict]:
    port = free_port()
    cmd = [
        str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
        "--artifacts-destination", str(work / "mlartifacts"), "--workers", "1",
    ]  # fmt: skip
    log = (work / "mlflow-server.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait(url, proc, "/health")
    return proc, url, {}


def start_reef(work: Path) -> tuple[subprocess.Popen, str, dict]:
    port = free_port()
    env = {**os.environ, "REEF_ADMIN_PASSWORD": PASSWORD}
    cmd = [
        sys.executable,
        "-m",
        "reef.cli",
        "serve",
        "--data",
        str(work / "reef"),
        "--port",
        str(port),
    ]
    log = (work / "reef-serve.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait(url, proc, "/healthz")
    token = httpx.post(f"{url}/api/tokens", auth=("admin", PASSWORD)).json()["token"]
    return proc, url, {"MLFLOW_TRACKING_TOKEN": token}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (gunicorn/uvicorn workers, step processes)."""
    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def measure(python: Path, url: str, env: dict, pid: int, repeat: int, work: Path) -> dict:
    """Per script run after a warm-up: wall, server CPU, the client's wait on the server in
    all and per kind of request (seconds), and the number of requests of each kind."""
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(TIMING_HOOK)
    environ = {
        **os.environ,
        **env,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "PYTHONPATH": str(hook),
    }
    out: dict[str, list] = {"wall": [], "cpu": [], "wait": [], "kinds": [], "counts": []}
    for i in range(repeat + 1):  # the first is a warm-up (imports cached, experiment created)
        timings = work / f"timings-{i}.json"
        before = tree_cpu(pid)
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "-P", str(WORKLOAD)],
            env={**environ, "REEF_BENCH_TIMINGS": str(timings)},
            cwd=work,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the workload failed against {url}:\n{done.stderr[-3000:]}")
        if i:
            requests = json.loads(timings.read_text().splitlines()[-1])
            kinds, counts = defaultdict(float), Counter()
            for r in requests:
                kinds[r["kind"]] += r["seconds"]
                counts[r["kind"]] += 1
            out["wall"].append(wall)
            out["cpu"].append(tree_cpu(pid) - before)
            out["wait"].append(sum(kinds.values()))
            out["kinds"].append(dict(kinds))
            out["counts"].append(dict(counts))
    return out


def stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def med(values: list[float]) -> float:
    return statistics.median(values)


def ratio(theirs: list[float], ours: list[float]) -> str:
    x = med(theirs) / max(med(ours), 1e-9)
    return f"x{x:.2f}" + (" (reaches x5)" if x >= 5 else "")


def report(m: dict, r: dict, repeat: int) -> list[str]:
    """The figures of both sides, medians over the runs, and the ratio MLflow/reef of each."""
    own = {side: [w - x for w, x in zip(d["wall"], d["wait"], strict=True)] for side, d in
           (("mlflow", m), ("reef", r))}  # fmt: skip
    lines = [
        f"# MLflow compatibility benchmark, {date.today()} ({platform.node()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        f"workload: {WORKLOAD.name} (10 params, 5 metrics x 1000 steps in batches of 500 "
        f"points, 3 artifacts, a logged scikit-learn model), client mlflow {MLFLOW_VERSION}, "
        f"{repeat} runs after a warm-up; medians (min, max); ratio = MLflow / reef",
        "",
        f"{'figure':<34} {'mlflow server (SQLite)':<32} {'reef serve':<32} ratio",
    ]
    rows = [
        ("wall, whole script", "wall"),
        ("server CPU", "cpu"),
        ("client waiting on the server", "wait"),
    ]
    for label, key in rows:
        lines.append(f"{label:<34} {fmt(m[key]):<32} {fmt(r[key]):<32} {ratio(m[key], r[key])}")
    label = "client's own time (wall - wait)"
    lines.append(
        f"{label:<34} {fmt(own['mlflow']):<32} {fmt(own['reef']):<32} "
        f"{ratio(own['mlflow'], own['reef'])}"
    )
    lines += ["", "client waiting, per kind of request (requests per script):"]
    for kind in sorted({k for run in m["kinds"] + r["kinds"] for k in run}):
        theirs = [run.get(kind, 0.0) for run in m["kinds"]]
        ours = [run.get(kind, 0.0) for run in r["kinds"]]
        n = r["counts"][-1].get(kind, 0)
        label = f"  {kind} ({n})"
        lines.append(f"{label:<34} {fmt(theirs):<32} {fmt(ours):<32} {ratio(theirs, ours)}")
    bound = med(m["wall"]) / max(med(own["reef"]), 1e-9)
    return [
        *lines,
        "",
        "notes: the client's own time (Python start, importing mlflow and scikit-learn, fitting,",
        "pickling and describing the model) runs in the same client on both sides and counts in",
        f"both walls: a server answering in no time would make the wall at most x{bound:.2f}",
        f"shorter than MLflow's here, so the server alone {'can' if bound >= 5 else 'cannot'} "
        "bring the end-to-end figure to x5;",
        "the figures the server decides are the client's wait and the server's CPU. The server",
        "CPU counts the whole process tree over the script's wall, background loops included.",
        "With the machine shared (see load above) every figure is stretched; compare the ratios.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlflow-venv", type=Path, default=Path("/tmp/reef-bench-mlflow"))
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "mlflow_compat.txt"
    )
    args = parser.parse_args()
    python = mlflow_venv(args.mlflow_venv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="reef-bench-compat-") as tmp:
        for side, start in (("mlflow", start_mlflow), ("reef", start_reef)):
            work = Path(tmp, side)
            work.mkdir()
            proc, url, env = start(python, work) if side == "mlflow" else start(work)
            try:
                results[side] = measure(python, url, env, proc.pid, args.repeat, work)
            finally:
                stop(proc)
    lines = report(results["mlflow"], results["reef"], args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
