"""Tracking benchmark: reef's SDK and runs table against MLflow's tracking client on SQLite.

reef: a `reef serve` subprocess on a temp data dir. `--clients` processes log `--runs` runs
the way a user's scripts would, through the SDK (reef.init with 10 params, then log_metrics
of 20 metrics per step for 100 steps, then finish; the SDK batches points in the background).
Ingest = all points / wall time from the first reef.init to the last run finished. Then, over
HTTP: the runs-table API (the one the runs page uses) for a filtered, metric-sorted page of 50,
and one run's whole metric history, each `--repeat` times (p50/p95 in ms).

MLflow (in its own venv, created under /tmp on first use): MlflowClient directly on a SQLite
backend store, no tracking server (see bench/tracking_mlflow.py). Per-call ingest (log_metric
per point) is measured on a sample of `--mlflow-sample-points` points, batched ingest
(log_batch of up to 1000) on `--mlflow-sample-runs` full-size runs; the `--runs` runs for the
queries are seeded with log_batch, with `--mlflow-seed-steps` steps per metric except the runs
whose history is fetched, which get every step. The final metric values are the same either
way, so both tools must return the same page.

    python bench/tracking.py [--runs 10000] [--clients 4] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# bench/ goes last on the path, not first: its scripts (bench/queue.py) must not shadow the stdlib
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path += [str(ROOT / "tests"), str(ROOT / "bench")]
from tracking_mlflow import metric_value, params_of, timed  # noqa: E402

DEFAULT_MLFLOW_VENV = Path("/tmp/reef-bench-mlflow")
PASSWORD = "bench-password"
REEF_QUERY = (
    "param=script.layers=3&metric=m00>0.5&sort=-metric:m01"
    "&columns=metric:m00,metric:m01,param:script.lr&limit=50"
)
MLFLOW_FILTER = "params.layers = '3' and metrics.m00 > 0.5"
MLFLOW_ORDER = "metrics.m01 DESC"


def start_reef(work: Path) -> tuple[subprocess.Popen, str, str]:
    from conftest import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "reef.cli", "serve", "--data", str(work / "reef")]
    env = {**os.environ, "REEF_ADMIN_PASSWORD": PASSWORD}
    log = (work / "reef-serve.log").open("wb")
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                token = httpx.post(f"{url}/api/tokens", auth=("admin", PASSWORD)).json()["token"]
                return proc, url, token
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"reef serve did not come up: see {work / 'reef-serve.log'}")


def log_share(url: str, token: str, runs: range, cfg: dict) -> None:
    """One client process: its share of the runs, one after another, through the SDK."""
    import reef

    steps, keys = cfg["steps"], [f"m{m:02d}" for m in range(cfg["metrics"])]
    for run in runs:
        params = params_of(run, cfg["params"])
        with reef.init("bench", f"r{run}", params, url=url, token=token) as tracked:
            for s in range(steps):
                values = {k: metric_value(run, m, s, steps) for m, k in enumerate(keys)}
                tracked.log_metrics(values, step=s)


def ingest(url: str, token: str, cfg: dict, clients: int, server: int) -> dict:
    """Wall time, and the server's CPU time (steadier than wall time on a shared machine)."""
    import psutil

    shares = [range(i, cfg["runs"], clients) for i in range(clients)]
    cpu0, t0 = sum(psutil.Process(server).cpu_times()[:2]), time.perf_counter()
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        pool.starmap(log_share, [(url, token, share, cfg) for share in shares])
    seconds = time.perf_counter() - t0
    cpu = sum(psutil.Process(server).cpu_times()[:2]) - cpu0
    points = cfg["runs"] * cfg["steps"] * cfg["metrics"]
    return {"points": points, "seconds": seconds, "rate": points / seconds, "server_cpu": cpu}


def reef_queries(url: str, token: str, cfg: dict) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        page = http.get(f"/api/projects/bench/runs?{REEF_QUERY}")
        page.raise_for_status()
        ids = [r["id"] for r in http.get("/api/projects/bench/runs?limit=500").json()]
        pick = random.Random(0)
        history = http.get(f"/api/projects/bench/runs/{ids[0]}/metrics").json()
        return {
            "total": int(page.headers["x-total-count"]),
            "page": [r["name"] for r in page.json()],
            "history_points": sum(len(v) for v in history.values()),
            "search": timed(
                lambda: http.get(f"/api/projects/bench/runs?{REEF_QUERY}").raise_for_status(),
                cfg["repeat"],
            ),
            "history": timed(
                lambda: http.get(
                    f"/api/projects/bench/runs/{pick.choice(ids)}/metrics"
                ).raise_for_status(),
                cfg["repeat"],
            ),
        }


def run_reef(work: Path, cfg: dict, clients: int) -> dict:
    proc, url, token = start_reef(work)
    try:
        httpx.post(
            f"{url}/api/projects",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
        out = {"ingest": ingest(url, token, cfg, clients, proc.pid)}
        out.update(reef_queries(url, token, cfg))
        out["data_mb"] = sum(f.stat().st_size for f in (work / "reef").rglob("reef.duckdb*")) / 1e6
        return out
    finally:
        proc.terminate()
        proc.wait(60)


def mlflow_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    ok = python.exists() and subprocess.run([python, "-c", "import mlflow"]).returncode == 0
    if not ok:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "mlflow"], check=True)
    return python


def run_mlflow(work: Path, cfg: dict, args: argparse.Namespace) -> dict:
    python = mlflow_python(args.mlflow_venv)
    version = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    side = {
        **cfg,
        "sample_points": args.mlflow_sample_points,
        "sample_runs": args.mlflow_sample_runs,
        "seed_steps": args.mlflow_seed_steps,
        "history_runs": min(50, cfg["runs"]),
        "filter": MLFLOW_FILTER,
        "order_by": MLFLOW_ORDER,
    }
    script = str(ROOT / "bench" / "tracking_mlflow.py")
    done = subprocess.run(
        [python, script, str(work / "mlflow.db"), json.dumps(side)],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the MLflow side failed:\n{done.stderr[-4000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out, "version": version}


def report(args: argparse.Namespace, cfg: dict, reef: dict, mlflow: dict | None) -> list[str]:
    ing = reef["ingest"]
    lines = [
        f"# bench/tracking.py --runs {cfg['runs']} --clients {args.clients}, {date.today()}, "
        f"{os.cpu_count()}-core {platform.machine()} CPU"
        + (f", MLflow {mlflow['version']} (MlflowClient on SQLite)" if mlflow else ""),
        f"reef ingest: {ing['points']:,} points ({cfg['runs']} runs x {cfg['metrics']} metrics "
        f"x {cfg['steps']} steps, {cfg['params']} params) in {ing['seconds']:.1f} s = "
        f"{ing['rate']:,.0f} points/s ({args.clients} client processes, SDK log_metrics per "
        f"step, batched by the SDK's sender); the server used {ing['server_cpu']:.1f} CPU-s, "
        f"{ing['server_cpu'] / cfg['runs'] * 1000:.1f} ms per run",
        f"reef runs-table page (filter {REEF_QUERY.split('&sort')[0]}, sort -metric:m01, "
        f"50 of {reef['total']}): p50 {reef['search']['p50']:.1f} ms  "
        f"p95 {reef['search']['p95']:.1f} ms",
        f"reef metric history ({reef['history_points']} points): "
        f"p50 {reef['history']['p50']:.1f} ms  p95 {reef['history']['p95']:.1f} ms",
        f"reef DuckDB file: {reef['data_mb']:.0f} MB",
    ]
    if mlflow:
        lines += mlflow_lines(cfg, reef, mlflow)
    return lines


def mlflow_lines(cfg: dict, reef: dict, mlflow: dict) -> list[str]:
    per_call = mlflow["per_call"]["points"] / mlflow["per_call"]["seconds"]
    batched = mlflow["batched"]["points"] / mlflow["batched"]["seconds"]
    rate, seed = reef["ingest"]["rate"], mlflow["seed"]
    return [
        f"mlflow ingest per call (log_metric per point, sample of "
        f"{mlflow['per_call']['points']:,} points): {per_call:,.0f} points/s",
        f"mlflow ingest batched (log_batch of 1000, {mlflow['batched']['points']:,} points in "
        f"full-size runs): {batched:,.0f} points/s",
        f"mlflow seeded {seed['runs']} runs for the queries in {seed['seconds']:.0f} s "
        f"(log_batch; {cfg['steps']} steps for the runs whose history is fetched, "
        f"fewer for the rest: same final values)",
        f"mlflow search_runs ({MLFLOW_FILTER}, order by {MLFLOW_ORDER}, 50 rows): "
        f"p50 {mlflow['search']['p50']:.1f} ms  p95 {mlflow['search']['p95']:.1f} ms",
        f"mlflow metric history ({mlflow['history_points']} points, get_metric_history per key): "
        f"p50 {mlflow['history']['p50']:.1f} ms  p95 {mlflow['history']['p95']:.1f} ms",
        f"reef/mlflow ingest: x{rate / per_call:,.0f} vs per call (target >= 100), "
        f"x{rate / batched:,.1f} vs batched (target >= 10)",
        f"reef/mlflow p50: runs page x{reef['search']['p50'] / mlflow['search']['p50']:.2f}, "
        f"history x{reef['history']['p50'] / mlflow['history']['p50']:.2f} (below 1: reef faster)",
        f"same page from both: {reef['page'] == mlflow['page']}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--params", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    parser.add_argument("--mlflow-sample-points", type=int, default=2000)
    parser.add_argument("--mlflow-sample-runs", type=int, default=20)
    parser.add_argument("--mlflow-seed-steps", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/tracking.txt")
    args = parser.parse_args()
    cfg = {k: getattr(args, k) for k in ("runs", "steps", "metrics", "params", "repeat")}
    with tempfile.TemporaryDirectory() as tmp:
        reef = run_reef(Path(tmp), cfg, args.clients)
        for line in report(args, cfg, reef, None)[1:]:
            print(line, flush=True)
        mlflow = None if args.no_mlflow else run_mlflow(Path(tmp), cfg, args)
    lines = report(args, cfg, reef, mlflow)
    print("\n".join(lines[5:]))
    args.results.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
