"""The MLflow side of bench/tracking.py. Runs in MLflow's own venv (it does not import reef):
MlflowClient straight on a SQLite backend store (no tracking server in between, the most
favourable setup for MLflow), printing one JSON object of results on the last line.

    python bench/tracking_mlflow.py DB_PATH '{"runs": 10000, ...}'
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

# Run as a script, bench/ is first on the path: bench/queue.py would shadow the stdlib's queue.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

if TYPE_CHECKING:  # mlflow is imported where it is used: bench/tracking.py imports this file
    from mlflow.tracking import MlflowClient


def metric_value(run: int, metric: int, step: int, steps: int) -> float:
    """A curve that rises to a final value distinct per run (so sorted pages have no ties)
    and the same whatever the number of steps. reef logs the same values."""
    final = (run * 2654435761 + metric * 40503) % 1_000_003 / 1_000_003
    return final * (step + 1) / steps


def params_of(run: int, count: int) -> dict[str, Any]:
    base = {"lr": [0.1, 0.01, 0.001, 0.05, 0.005][run % 5], "layers": run % 4 + 1}
    return {**base, **{f"p{i:02d}": f"v{(run + i) % 7}" for i in range(count - len(base))}}


def per_call_rate(client: MlflowClient, exp: str, cfg: dict) -> dict:
    """log_metric once per point, on a sample: one run, `sample_points` points."""
    run_id = client.create_run(exp).info.run_id
    n, metrics = cfg["sample_points"], cfg["metrics"]
    t0 = time.perf_counter()
    for i in range(n):
        step, m = divmod(i, metrics)
        client.log_metric(run_id, f"m{m:02d}", metric_value(0, m, step, n // metrics), step=step)
    return {"points": n, "seconds": time.perf_counter() - t0}


def log_run(client: MlflowClient, exp: str, run: int, steps: int, cfg: dict) -> str:
    """One run: its params, then its metrics with log_batch of up to 1000 points."""
    from mlflow.entities import Metric, Param

    run_id = client.create_run(exp, run_name=f"r{run}").info.run_id
    params = [Param(k, str(v)) for k, v in params_of(run, cfg["params"]).items()]
    client.log_batch(run_id, params=params)
    stamp = int(time.time() * 1000)
    points = [
        Metric(f"m{m:02d}", metric_value(run, m, s, steps), stamp, s)
        for s in range(steps)
        for m in range(cfg["metrics"])
    ]
    for i in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[i : i + 1000])
    client.set_terminated(run_id)
    return run_id


def batched_rate(client: MlflowClient, exp: str, cfg: dict) -> dict:
    """log_batch of up to 1000 points, whole runs at full size: `sample_runs` of them."""
    t0 = time.perf_counter()
    for run in range(cfg["sample_runs"]):
        log_run(client, exp, run, cfg["steps"], cfg)
    points = cfg["sample_runs"] * cfg["steps"] * cfg["metrics"]
    return {"points": points, "seconds": time.perf_counter() - t0}


def seed(client: MlflowClient, exp: str, cfg: dict) -> tuple[dict, list[str]]:
    """The runs the queries look at: `history_runs` with every step, the rest with
    `seed_steps` steps (search reads latest_metrics, one row per run and key either way)."""
    t0, full = time.perf_counter(), []
    for run in range(cfg["runs"]):
        steps = cfg["steps"] if run < cfg["history_runs"] else cfg["seed_steps"]
        run_id = log_run(client, exp, run, steps, cfg)
        if steps == cfg["steps"]:
            full.append(run_id)
    return {"runs": cfg["runs"], "seconds": time.perf_counter() - t0}, full


def history(client: MlflowClient, run_id: str, keys: list[str]) -> list:
    """All of a run's metric histories: MLflow fetches one key per call."""
    return [client.get_metric_history(run_id, k) for k in keys]


def timed(fn, repeat: int) -> dict:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1]}


def main() -> None:
    from mlflow.tracking import MlflowClient

    db, cfg = sys.argv[1], json.loads(sys.argv[2])
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    out = {
        "per_call": per_call_rate(client, client.create_experiment("per-call"), cfg),
        "batched": batched_rate(client, client.create_experiment("batched"), cfg),
    }
    exp = client.create_experiment("runs")
    out["seed"], full = seed(client, exp, cfg)
    found = client.search_runs(
        [exp], filter_string=cfg["filter"], order_by=[cfg["order_by"]], max_results=50
    )
    out["page"] = [r.info.run_name for r in found]
    out["search"] = timed(
        lambda: client.search_runs(
            [exp], filter_string=cfg["filter"], order_by=[cfg["order_by"]], max_results=50
        ),
        cfg["repeat"],
    )
    keys = [f"m{m:02d}" for m in range(cfg["metrics"])]
    pick = random.Random(0)
    out["history_points"] = sum(len(h) for h in history(client, full[0], keys))
    out["history"] = timed(lambda: history(client, pick.choice(full), keys), cfg["repeat"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
