"""The expert's path, timed (issue 12, item 8), on scikit-learn's breast-cancer data (569 rows).

Through the API, as the pages do it: upload an .xlsx, fix one cell, train a model through the
"Train a model" endpoint (the same function the page's button calls), predict one row as the
try-it form does, and send feedback. It reports:

- the training wall time: the train request to the run finished, with each step's time
  (started to finished, as the run records it) (target: <= 60 s on 2 cores);
- the API calls on the path, one each;
- page timings: each page on the path fetched `--repeat` times after one warm-up; the median
  request time on loopback stands for the server time (target: <= 300 ms).

    python bench/path.py [--repeat N]        # writes bench/results/path.txt
"""

# ruff: noqa: E402  (sys.path is mended before the other imports)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue` (imported by joblib): off sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import statistics
import tempfile
import time

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results" / "path.txt"
PROJECT, DATASET = "clinic", "patients"
TARGET_PAGE_MS, TARGET_TRAIN_S = 300.0, 60.0


def timed(client: httpx.Client, method: str, url: str, **kw) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    resp = client.request(method, url, **kw)
    ms = (time.perf_counter() - started) * 1000
    if resp.status_code >= 400:
        raise SystemExit(f"{method} {url}: {resp.status_code} {resp.text[:300]}")
    return resp, ms


def prepare(api: httpx.Client, xlsx: Path) -> dict[str, float]:
    """Project, upload and the cell fix; their times in ms."""
    from expert_data import RIGHT_LABEL, WRONG_ROW

    times = {}
    _, times["create project"] = timed(api, "POST", "/api/projects", json={"name": PROJECT})
    with xlsx.open("rb") as f:
        files = {"file": ("patients.xlsx", f.read())}
    _, times["upload xlsx"] = timed(
        api, "POST", f"/api/projects/{PROJECT}/datasets", data={"name": DATASET}, files=files
    )
    rows, _ = timed(
        api, "GET", f"/api/projects/{PROJECT}/datasets/{DATASET}/versions/1/rows",
        params={"row_ids": "true", "offset": WRONG_ROW, "limit": 1},
    )  # fmt: skip
    row_id = rows.json()["rows"][0][0]
    body = {"op": "update_rows", "updates": [{"_rowid": row_id, "diagnosis": RIGHT_LABEL}],
            "message": "typo in the diagnosis"}  # fmt: skip
    _, times["fix one cell"] = timed(
        api, "POST", f"/api/projects/{PROJECT}/datasets/{DATASET}/versions", json=body
    )
    return times


def train(api: httpx.Client) -> dict:
    """Train through the flow endpoint and wait for the run; the wall time and the steps."""
    started = time.perf_counter()
    resp, _ = timed(
        api, "POST", f"/api/projects/{PROJECT}/datasets/{DATASET}/train",
        json={"target": "diagnosis"},
    )  # fmt: skip
    out = resp.json()
    while True:
        state = api.get(f"/api/projects/{PROJECT}/runs/{out['run_id']}").json()
        if state["run"]["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    out["wall_s"] = time.perf_counter() - started
    out["status"] = state["run"]["status"]
    out["error"] = state["run"]["error"]
    out["steps"] = {s["name"]: _seconds(s["started_at"], s["finished_at"]) for s in state["steps"]}
    out["metrics"] = state["metrics"]
    return out


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def predict_and_feedback(api: httpx.Client, model: str) -> dict[str, float]:
    from expert_data import cancer_columns

    header, rows = cancer_columns()
    row = dict(zip(header[:-1], rows[0][:-1], strict=True))
    times = {}
    resp, times["predict one row"] = timed(
        api, "POST", f"/api/projects/{PROJECT}/models/{model}/predict", json={"rows": [row]}
    )
    request_id = resp.json()["request_id"]
    _, times["feedback"] = timed(
        api, "POST", f"/api/projects/{PROJECT}/models/{model}/feedback",
        json={"request_id": request_id, "label": rows[0][-1]},
    )  # fmt: skip
    return times


def page_times(web: httpx.Client, run_id: int, model: str, repeat: int) -> dict[str, float]:
    base = f"/projects/{PROJECT}"
    pages = {
        "project": base,
        "dataset": f"{base}/datasets/{DATASET}",
        "train form (fragment)": f"{base}/datasets/{DATASET}/train",
        "result": f"{base}/runs/{run_id}/result",
        "run": f"{base}/runs/{run_id}",
        "model": f"{base}/models/{model}",
        "pipeline": f"{base}/pipelines/{model}",
    }
    out = {}
    for name, url in pages.items():
        timed(web, "GET", url)  # warm
        out[name] = statistics.median(timed(web, "GET", url)[1] for _ in range(repeat))
    return out


def login(url: str) -> httpx.Client:
    from conftest import ADMIN_PASSWORD, csrf

    web = httpx.Client(base_url=url, timeout=60)
    token = csrf(web.get("/login").text)
    web.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                             "_csrf_token": token})  # fmt: skip
    return web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from expert_data import cancer_xlsx

    from conftest import ADMIN_PASSWORD, start_server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_server(root / "data")
        try:
            api = httpx.Client(base_url=server.url, timeout=120)
            token = api.post("/api/tokens", auth=("admin", ADMIN_PASSWORD)).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            times = prepare(api, cancer_xlsx(root / "patients.xlsx"))
            trained = train(api)
            if trained["status"] != "succeeded":
                raise SystemExit(f"training {trained['status']}: {trained['error']}")
            times.update(predict_and_feedback(api, trained["model"]))
            pages = page_times(login(server.url), trained["run_id"], trained["model"], args.repeat)
        finally:
            server.stop()
    report(times, trained, pages)


def report(times: dict[str, float], trained: dict, pages: dict[str, float]) -> None:
    lines = [
        f"expert path on breast-cancer data (569 rows, 30 features), {time.strftime('%Y-%m-%d')}",
        f"cpus: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.2f}",
        "",
        f"training wall time (train request -> run finished): {trained['wall_s']:.1f} s "
        f"(target <= {TARGET_TRAIN_S:.0f} s)"
        f" {'OK' if trained['wall_s'] <= TARGET_TRAIN_S else 'OVER'}",
        f"  pipeline {trained['pipeline']} with {trained['module']}: task {trained['task_plain']}",
        *[f"  step {n}: {d:.1f} s" for n, d in trained["steps"].items() if d is not None],
        f"  accuracy on held-out rows: {trained['metrics'].get('accuracy', float('nan')):.4f}",
        "",
        "API calls on the path (ms, one each):",
        *[f"  {k:<20} {v:8.1f}" for k, v in times.items()],
        "",
        f"pages (median server time over the requests, ms; target <= {TARGET_PAGE_MS:.0f}):",
        *[
            f"  {k:<22} {v:8.1f} {'OK' if v <= TARGET_PAGE_MS else 'OVER'}"
            for k, v in pages.items()
        ],
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
