"""MLflow compatibility benchmark: the same unchanged MLflow script (bench/mlflow_workload.py)
against `mlflow server` (SQLite backend, artifacts proxied, in its own venv) and against
`reef serve`, in one run, with the same MLflow client (the MLflow venv's) for both.

For each side: wall time of the whole script per repeat (median and range), the server's
CPU seconds (its process tree) per script, and the time the client spent waiting on the
server: the sum of its HTTP request latencies, in all and per kind of request, measured from
outside the unchanged script by a `sitecustomize` hook (on PYTHONPATH) that times every
`requests.Session.send`. The hook also counts what could make the client wait without it
showing as a slow answer: retries (urllib3's, with MLflow's backoff of 4 s and more from the
second retry of a request), answers other than 2xx, and new connections. Both servers run at
once and the scripts alternate between them (the order swapped each round), so a shared
machine's changing load stretches both sides alike; the load average is sampled before each
script. Results go to bench/results/mlflow_compat.txt.

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


# Loaded at the workload's start (PYTHONPATH): times each HTTP request the client sends, notes
# its status, every retry urllib3 makes (and why) and every new connection, and appends them as
# one JSON line to $REEF_BENCH_TIMINGS when the script exits.
TIMING_HOOK = """
import atexit, json, os, time
import requests
import urllib3.connection
import urllib3.util.retry

_sent, _timings, _retries, _statuses = requests.Session.send, [], [], {}
_connects = [0]

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
    started, status = time.perf_counter(), "error"
    try:
        response = _sent(self, request, **kw)
        status = str(response.status_code)
        return response
    finally:
        _timings.append({"kind": _kind(request), "seconds": time.perf_counter() - started})
        _statuses[status] = _statuses.get(status, 0) + 1

_increment = urllib3.util.retry.Retry.increment

def _retry(self, method=None, url=None, response=None, error=None, *a, **kw):
    why = f"HTTP {response.status}" if response is not None else type(error).__name__
    _retries.append(f"{method} {str(url).split('?')[0]}: {why}")
    return _increment(self, method, url, response, error, *a, **kw)

_connect = urllib3.connection.HTTPConnection.connect

def _connected(self):
    _connects[0] += 1
    return _connect(self)

def _write():
    with open(os.environ["REEF_BENCH_TIMINGS"], "a") as f:
        f.write(json.dumps({"requests": _timings, "retries": _retries,
                            "statuses": _statuses, "connects": _connects[0]}) + "\\n")

if os.environ.get("REEF_BENCH_TIMINGS"):
    requests.Session.send = _send
    urllib3.util.retry.Retry.increment = _retry
    urllib3.connection.HTTPConnection.connect = _connected
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


def environment(url: str, env: dict, work: Path) -> dict:
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(TIMING_HOOK)
    return {
        **os.environ,
        **env,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "PYTHONPATH": str(hook),
    }


def script(python: Path, environ: dict, pid: int, work: Path, i: int) -> dict:
    """One run of the workload: wall, server CPU, the client's wait on the server in all and
    per kind of request (seconds), the number of requests of each kind, retries, statuses,
    new connections, and the load average at its start."""
    timings = work / f"timings-{i}.json"
    load = os.getloadavg()[0]
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
        url = environ["MLFLOW_TRACKING_URI"]
        raise RuntimeError(f"the workload failed against {url}:\n{done.stderr[-3000:]}")
    # the last line: child processes the script starts (MLflow's requirement inference)
    # load the hook too and write theirs first
    seen = json.loads(timings.read_text().splitlines()[-1])
    kinds, counts = defaultdict(float), Counter()
    for r in seen["requests"]:
        kinds[r["kind"]] += r["seconds"]
        counts[r["kind"]] += 1
    return {
        "wall": wall,
        "cpu": tree_cpu(pid) - before,
        "wait": sum(kinds.values()),
        "kinds": dict(kinds),
        "counts": dict(counts),
        "retries": seen["retries"],
        "statuses": seen["statuses"],
        "connects": seen["connects"],
        "load": load,
    }


def measure(sides: dict[str, tuple], python: Path, repeat: int) -> dict[str, dict]:
    """A warm-up script per side (imports cached, experiment created), then `repeat` rounds
    of one script per side, alternating which goes first."""
    out: dict[str, dict[str, list]] = {side: defaultdict(list) for side in sides}
    for environ, pid, work in sides.values():
        script(python, environ, pid, work, 0)
    names = list(sides)
    for i in range(1, repeat + 1):
        for side in names if i % 2 else names[::-1]:
            environ, pid, work = sides[side]
            for key, value in script(python, environ, pid, work, i).items():
                out[side][key].append(value)
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


def report(m: dict, r: dict, repeat: int, logs: dict[str, int]) -> list[str]:
    """The figures of both sides, medians over the runs, and the ratio MLflow/reef of each."""
    own = {side: [w - x for w, x in zip(d["wall"], d["wait"], strict=True)] for side, d in
           (("mlflow", m), ("reef", r))}  # fmt: skip
    loads = m["load"] + r["load"]
    lines = [
        f"# MLflow compatibility benchmark, {date.today()} ({platform.node()}, "
        f"{os.cpu_count()} cores)",
        f"load average (1 min) at each script's start: median {med(loads):.1f}, "
        f"min {min(loads):.1f}, max {max(loads):.1f}",
        f"workload: {WORKLOAD.name} (10 params, 5 metrics x 1000 steps in batches of 500 "
        f"points, 3 artifacts, a logged scikit-learn model), client mlflow {MLFLOW_VERSION}, "
        f"{repeat} runs a side after a warm-up each, the sides alternating; medians (min, max); "
        "ratio = MLflow / reef",
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
    lines += ["", "what could make the client wait unseen (all scripts of a side):"]
    for side, d in (("mlflow server", m), ("reef serve", r)):
        statuses: Counter = Counter()
        for run in d["statuses"]:
            statuses.update(run)
        odd = {k: v for k, v in sorted(statuses.items()) if not k.startswith("2")}
        retries = [x for run in d["retries"] for x in run]
        lines.append(
            f"  {side}: {sum(statuses.values())} requests, not 2xx: {odd or 'none'}; "
            f"retries: {len(retries)}{' ' + str(retries[:5]) if retries else ''}; "
            f"new connections per script: {sorted(set(d['connects']))}; "
            f"error lines in its log: {logs[side.split()[0]]}"
        )
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


def server_errors(work: Path) -> int:
    """Lines of the server's log that report an error or a traceback."""
    text = "".join(p.read_text(errors="replace") for p in work.glob("*-server.log"))
    text += "".join(p.read_text(errors="replace") for p in work.glob("*-serve.log"))
    return sum(1 for line in text.splitlines() if "Traceback" in line or "ERROR" in line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlflow-venv", type=Path, default=Path("/tmp/reef-bench-mlflow"))
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "mlflow_compat.txt"
    )
    args = parser.parse_args()
    python = mlflow_venv(args.mlflow_venv)
    with tempfile.TemporaryDirectory(prefix="reef-bench-compat-") as tmp:
        procs: list[subprocess.Popen] = []
        sides: dict[str, tuple] = {}
        try:
            for side in ("mlflow", "reef"):
                work = Path(tmp, side)
                work.mkdir()
                proc, url, env = (
                    start_mlflow(python, work) if side == "mlflow" else start_reef(work)
                )
                procs.append(proc)
                sides[side] = (environment(url, env, work), proc.pid, work)
            results = measure(sides, python, args.repeat)
        finally:
            for proc in procs:
                stop(proc)
        logs = {side: server_errors(work) for side, (_, _, work) in sides.items()}
    lines = report(results["mlflow"], results["reef"], args.repeat, logs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
