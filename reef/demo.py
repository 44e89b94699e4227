"""`reef demo`: the whole loop on the digits data set, driven over HTTP like any user script.

Creates project `demo`, uploads scikit-learn's handwritten digits (shipped offline) as a
dataset, saves and runs split -> mlp-classifier -> evaluate, checks that model `digits` was
registered, and calls predict.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from dataclasses import dataclass, field

from reef.sdk import Client, ReefClientError
from reef.server.run import server_for
from reef.settings import Settings

PROJECT, DATASET, PIPELINE, MODEL = "demo", "digits", "digits", "digits"
MIN_ACCURACY = 0.9
RUN_TIMEOUT_S = 600

SPEC = {
    "steps": [
        {
            "name": "split",
            "module": "library/split",
            "inputs": {"data": f"dataset:{DATASET}"},
            "params": {"test_size": 0.25, "seed": 0, "label": "label"},
        },
        {
            "name": "train",
            "module": "library/mlp-classifier",
            "inputs": {"train": "split.train"},
            "params": {"label": "label", "hidden": 64, "epochs": 30, "seed": 0},
            "register": MODEL,
        },
        {
            "name": "evaluate",
            "module": "library/evaluate",
            "inputs": {"model": "train.model", "test": "split.test"},
            "params": {"label": "label"},
        },
    ]
}


@dataclass
class DemoResult:
    ok: bool = False
    run_id: int | None = None
    accuracy: float | None = None
    lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(f"demo: {text}", flush=True)


def digits_parquet() -> bytes:
    """The 1,797 8x8 digit images that scikit-learn ships, as a Parquet file (64 pixels + label)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    digits = load_digits()
    columns = {f"px_{i // 8}_{i % 8}": digits.data[:, i].astype("float32") for i in range(64)}
    table = pa.table({**columns, "label": digits.target.astype("int64")})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def drive(client: Client, result: DemoResult) -> None:
    """The demo flow, step by step, through the public API."""
    if PROJECT not in {p["name"] for p in client.request("GET", "/api/projects")}:
        client.request(
            "POST",
            "/api/projects",
            json={"name": PROJECT, "description": "Handwritten digits, end to end"},
        )
        result.say(f"created project '{PROJECT}'")
    datasets = {d["name"] for d in client.request("GET", f"/api/projects/{PROJECT}/datasets")}
    if DATASET not in datasets:
        up = client.request(
            "POST",
            f"/api/projects/{PROJECT}/datasets",
            data={"name": DATASET, "message": "scikit-learn digits"},
            files={"file": ("digits.parquet", digits_parquet())},
        )
        result.say(f"imported dataset '{DATASET}' v{up['version']}: {up['num_rows']} rows")
    client.request("POST", f"/api/projects/{PROJECT}/pipelines", json={"name": PIPELINE, **SPEC})
    run = client.request("POST", f"/api/projects/{PROJECT}/pipelines/{PIPELINE}/runs", json={})
    result.run_id = run["id"]
    result.say(f"started run {run['id']}: split -> train -> evaluate")
    final = wait_for(client, run["id"], result)
    if final["run"]["status"] != "succeeded":
        result.say(f"run {run['id']} {final['run']['status']}: {final['run']['error']}")
        return
    result.accuracy = final["metrics"].get("accuracy")
    result.say(
        f"test accuracy {result.accuracy:.4f}, macro F1 "
        f"{final['metrics'].get('macro_f1', float('nan')):.4f}"
    )
    predict(client, result)


def wait_for(client: Client, run_id: int, result: DemoResult) -> dict:
    seen: dict[str, str] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = client.request("GET", f"/api/projects/{PROJECT}/runs/{run_id}")
        for s in state["steps"]:
            if seen.get(s["name"]) != s["status"]:
                seen[s["name"]] = s["status"]
                result.say(f"  step {s['name']}: {s['status']}")
        if state["run"]["status"] in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish within {RUN_TIMEOUT_S} s")


def predict(client: Client, result: DemoResult) -> None:
    model = client.request("GET", f"/api/projects/{PROJECT}/models/{MODEL}")
    version = model["versions"][0]["version"]
    result.say(
        f"registered model '{MODEL}' v{version} (ONNX parity max abs diff "
        f"{model['versions'][0]['parity_max_diff']:.2e})"
    )
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows, truth = digits.data[-5:].tolist(), digits.target[-5:].tolist()
    answer = client.request(
        "POST", f"/api/projects/{PROJECT}/models/{MODEL}/predict", json={"rows": rows}
    )
    labels = [p["label"] for p in answer["predictions"]]
    result.say(f"predict v{answer['model_version']}: {labels} (true labels {truth})")
    result.ok = result.accuracy is not None and result.accuracy >= MIN_ACCURACY


def where_to_look(
    settings: Settings, initial_password: str | None, run_id: int | None, exit_after: bool
) -> str:
    """The closing line: the page to open (the run, or the project when no run started) and
    how to log in; after --exit, how to start the server again first."""
    login = initial_password or (
        "the password in REEF_ADMIN_PASSWORD"
        if settings.admin_password
        else "the password printed when this data dir was first used"
    )
    page = f"{settings.url}/projects/{PROJECT}" + (f"/runs/{run_id}" if run_id else "")
    if exit_after:
        return (
            f"everything is kept in {settings.data_dir}; to look at it, run "
            f"`reef serve --data {settings.data_dir} --port {settings.port}`, open {page} "
            f"and log in as admin / {login}"
        )
    return f"open {page} and log in as admin / {login}"


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run_demo(settings: Settings, exit_after: bool) -> int:
    if not port_free(settings.host, settings.port):  # before a first start prints a password
        print(f"reef: port {settings.port} is in use; pass --port", flush=True)
        return 2
    app, server = server_for(settings)
    result = DemoResult()

    def driver() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.1)
        hub = app.state.hub
        token = hub.people.issue_token(hub.admin().user_id, "api", "demo")
        client = Client(settings.url, token)
        started = time.monotonic()
        try:
            drive(client, result)
        except (ReefClientError, TimeoutError, OSError) as e:
            result.say(f"failed: {e}")
        finally:
            client.close()
        result.say(f"{'done' if result.ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
        result.say(where_to_look(settings, hub.initial_password, result.run_id, exit_after))
        if exit_after:
            server.should_exit = True

    threading.Thread(target=driver, name="reef-demo", daemon=True).start()
    server.run()
    return 0 if result.ok else 1
