"""MLflow compatibility benchmark: the same unchanged MLflow script (bench/mlflow_workload.py)
against `mlflow server` (SQLite backend, artifacts proxied, in its own venv) and against
`reef serve`, in one run, with the same MLflow client (the MLflow venv's) for both.

For each side: wall time of the whole script per repeat (median and range), and the server's
CPU seconds (its process tree) per script. Results go to bench/results/mlflow_compat.txt.

    python bench/mlflow_compat.py [--repeat 5] [--mlflow-venv /tmp/reef-bench-mlflow]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
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
    environ = {
        **os.environ,
        **env,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    walls, cpus = [], []
    for i in range(repeat + 1):  # the first is a warm-up (imports cached, experiment created)
        before = tree_cpu(pid)
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "-P", str(WORKLOAD)],
            env=environ,
            cwd=work,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the workload failed against {url}:\n{done.stderr[-3000:]}")
        if i:
            walls.append(wall)
            cpus.append(tree_cpu(pid) - before)
    return {"wall": walls, "cpu": cpus}


def stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


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
    m, r = results["mlflow"], results["reef"]
    speedup = statistics.median(m["wall"]) / statistics.median(r["wall"])
    cpu_ratio = statistics.median(m["cpu"]) / max(statistics.median(r["cpu"]), 1e-9)
    lines = [
        f"# MLflow compatibility benchmark, {date.today()} ({platform.node()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        f"workload: {WORKLOAD.name} (10 params, 5 metrics x 1000 steps in batches of 500 "
        f"points, 3 artifacts, a logged scikit-learn model), client mlflow {MLFLOW_VERSION}, "
        f"{args.repeat} runs after a warm-up",
        f"mlflow server (SQLite, proxied artifacts): wall {fmt(m['wall'])}; "
        f"server CPU {fmt(m['cpu'])}",
        f"reef serve:                               wall {fmt(r['wall'])}; "
        f"server CPU {fmt(r['cpu'])}",
        f"end to end: reef x{speedup:.2f} faster (target x5); server CPU x{cpu_ratio:.2f} less",
        "note: the script's own time (Python start, importing mlflow and scikit-learn, fitting "
        "and pickling the model) is the same on both sides and is part of both walls",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
