# ruff: noqa: E402  (sys.path is mended before the other imports)
"""Serving benchmark: reef's predict endpoint against `mlflow models serve`, same model.

Trains the digits classifier (scikit-learn MLP, 64 features, 10 classes), registers its ONNX
export as model demo/digits in a fresh data dir served by `reef serve`, saves the same model
with mlflow.sklearn and serves it with `mlflow models serve` (MLflow lives in its own venv,
created under /tmp on first use). Both are hit over HTTP by the same load generator, `wrk`
(apt-get install -y wrk), with the same number of open connections, at batch 1 and batch 64;
it prints requests/s, p50/p99 latency (wrk's histogram) and reef/MLflow ratios.

    python bench/serving.py [--seconds 10] [--clients 8] [--no-mlflow]   # needs wrk

"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `python bench/x.py` puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue` for the packages imported below: take bench/ off first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_MLFLOW_VENV = Path("/tmp/reef-bench-mlflow")
PASSWORD = "bench-password"


def train(work: Path) -> tuple[object, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = digits.data.astype(np.float32)
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0)
    return model.fit(x, digits.target), x


def start_reef(work: Path, model: object, x: np.ndarray) -> tuple[subprocess.Popen, str, str]:
    """Register the model in a fresh data dir, then serve it with `reef serve`."""
    from conftest import free_port
    from reef.hub import Hub
    from reef.runtime.export import export_model
    from reef.settings import Settings

    settings = Settings(data_dir=work / "reef", admin_password=PASSWORD, port=free_port())
    features = [f"px_{i // 8}_{i % 8}" for i in range(64)]
    export_model(model, x, work / "onnx", features, [str(c) for c in range(10)])
    hub = Hub.open(settings, start_queue=False)
    project = hub.projects.create("demo", hub.admin(), "bench")
    hub.model_service.register_dir(
        project.id,
        "digits",
        work / "onnx",
        run_id=0,
        step_name="train",
        metrics={},
        lineage={},
        author="admin",
        train=x,
    )
    hub.model_service.close()
    hub.close()
    cmd = [
        sys.executable,
        "-m",
        "reef.cli",
        "serve",
        "--data",
        str(settings.data_dir),
        "--port",
        str(settings.port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{settings.port}"
    wait_up(f"{url}/healthz", proc)
    token = httpx.post(f"{url}/api/tokens", auth=("admin", PASSWORD)).json()["token"]
    return proc, url, token


def start_mlflow(work: Path, model: object, venv: Path) -> tuple[subprocess.Popen, str]:
    """Save the model with mlflow.sklearn and serve it from MLflow's own venv."""
    import pickle

    import sklearn

    from conftest import free_port

    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "mlflow",
                f"scikit-learn=={sklearn.__version__}",
            ],
            check=True,
        )
    (work / "model.pkl").write_bytes(pickle.dumps(model))
    save = (
        "import pickle, mlflow.sklearn, sys; m = pickle.load(open(sys.argv[1], 'rb')); "
        "mlflow.sklearn.save_model(m, sys.argv[2], serialization_format='cloudpickle')"
    )
    subprocess.run(
        [str(python), "-c", save, str(work / "model.pkl"), str(work / "mlflow")], check=True
    )
    port = free_port()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    cmd = [
        str(venv / "bin" / "mlflow"),
        "models",
        "serve",
        "-m",
        str(work / "mlflow"),
        "--env-manager",
        "local",
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/ping", proc)
    return proc, url


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up")


WRK_SCRIPT = """
local f = io.open(os.getenv("REEF_BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("REEF_BENCH_AUTH")
if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end

function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), bad))
end
"""


def load(url: str, body: bytes, auth: str, seconds: float, clients: int, work: Path) -> dict:
    """wrk (C, event-driven: not the bottleneck) keeps `clients` connections busy for
    `seconds`; req/s and p50/p99 come from its own histogram. Non-2xx answers count as failed."""
    script, body_file = work / "bench.lua", work / "body.json"
    script.write_text(WRK_SCRIPT)
    body_file.write_bytes(body)
    env = {**os.environ, "REEF_BENCH_BODY": str(body_file), "REEF_BENCH_AUTH": auth}
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "-s", str(script), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, duration_us, p50, p99, failed = map(int, line.split()[1:])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "failed": failed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, x = train(work)
        procs = []
        try:
            reef, reef_url, token = start_reef(work, model, x)
            procs.append(reef)
            predict = f"{reef_url}/api/projects/demo/models/digits/predict"
            targets = {"reef": (predict, f"Bearer {token}", "rows")}
            if not args.no_mlflow:
                mlflow, mlflow_url = start_mlflow(work, model, args.mlflow_venv)
                procs.append(mlflow)
                targets["mlflow"] = (f"{mlflow_url}/invocations", "", "inputs")
            report(targets, x, args, work)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
    return 0


def report(targets: dict, x: np.ndarray, args: argparse.Namespace, work: Path) -> None:
    results: dict[tuple[str, int], dict] = {}
    for batch in (1, 64):
        for name, (url, auth, key) in targets.items():
            body = json.dumps({key: x[:batch].tolist()}).encode()
            load(url, body, auth, 2, args.clients, work)  # warm up
            results[name, batch] = r = load(url, body, auth, args.seconds, args.clients, work)
            print(
                f"{name:7s} batch {batch:3d}: {r['rps']:8.1f} req/s  p50 {r['p50']:7.2f} ms  "
                f"p99 {r['p99']:7.2f} ms  failed {r['failed']}",
                flush=True,
            )
        if "mlflow" in targets:
            ours, theirs = results["reef", batch], results["mlflow", batch]
            print(
                f"reef/mlflow batch {batch}: throughput x{ours['rps'] / theirs['rps']:.2f}, "
                f"p50 x{ours['p50'] / theirs['p50']:.2f}, p99 x{ours['p99'] / theirs['p99']:.2f}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
