# ruff: noqa: E402  (sys.path is mended before the other imports)
"""Model benchmark: reef's default model per task against plain scikit-learn baselines.

Four data sets, all offline: scikit-learn's wine (3 classes), breast_cancer with 15% of the
numbers missing and two string columns added (a clinic, unrelated to the label, and a tumour
size band from `worst area` with 20% of it scrambled), diabetes (a number to predict), and
a labelled text set this script builds (short support tickets in 4 topics, with shared and
misleading words).

For each, a real `reef serve` runs the pipeline the "Train a model" flow makes: split ->
tabular-learner (text-classifier for text) -> evaluate, and registers the model. The
baselines are fitted here on the very same split (the split step's output files), with the
same preprocessing ideas (median imputation, one-hot, scaling, TF-IDF). It reports accuracy
or RMSE, training wall time (the train step's duration for reef, the fit for a baseline) and
the batch-1 predict latency over HTTP (p50 of sequential requests) on raw rows, next to the
latency of a numbers-only model (the old one-float-input layout) registered for the same data.

    python bench/models.py [--requests 300] [--out bench/results/models.txt]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
PROJECT = "bench"


# data ------------------------------------------------------------------------------------
def wine() -> pa.Table:
    from sklearn.datasets import load_wine

    d = load_wine()
    columns = {n: d.data[:, i] for i, n in enumerate(d.feature_names)}
    return pa.table({**columns, "cultivar": [f"cultivar_{t}" for t in d.target]})


def cancer(seed: int = 0) -> pa.Table:
    """breast_cancer with 15% of the numbers missing and two string columns."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    rng = np.random.default_rng(seed)
    columns = {}
    for i, n in enumerate(d.feature_names):
        columns[n] = [None if rng.random() < 0.15 else float(v) for v in d.data[:, i]]
    area = d.data[:, list(d.feature_names).index("worst area")]
    band = np.digitize(area, np.quantile(area, [1 / 3, 2 / 3]))
    scrambled = np.where(rng.random(len(band)) < 0.2, rng.integers(0, 3, len(band)), band)
    columns["size_band"] = [["small", "medium", "large"][b] for b in scrambled]
    columns["clinic"] = [str(c) for c in rng.choice(["north", "south", "east", "west"], len(band))]
    return pa.table({**columns, "diagnosis": [["malignant", "benign"][t] for t in d.target]})


def diabetes() -> pa.Table:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    columns = {n: d.data[:, i] for i, n in enumerate(d.feature_names)}
    return pa.table({**columns, "progression": d.target})


TOPICS = {
    "billing": "invoice charge refund payment card price bill overcharged receipt plan",
    "delivery": "parcel courier shipping arrived late tracking address box delivered driver",
    "account": "password login locked email username reset profile access verify signup",
    "product": "broken screen battery button size colour quality stopped works manual",
}
COMMON = (
    "hello please help thanks my the a is was not and I order yesterday today again still "
    "week need you can why this customer service issue problem"
)


def tickets(rows: int = 800, seed: int = 0) -> pa.Table:
    """Short support tickets: 3-6 words of their topic, 0-2 of another topic, 4-8 common
    words; 8% of the labels are wrong (a human mislabelled them)."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, labels = [], []
    for i in range(rows):
        topic = names[i % len(names)]
        other = names[(i + 1 + int(rng.integers(0, 3))) % len(names)]
        words = list(rng.choice(TOPICS[topic].split(), int(rng.integers(2, 6))))
        words += list(rng.choice(TOPICS[other].split(), int(rng.integers(0, 3))))
        words += list(rng.choice(COMMON.split(), int(rng.integers(4, 9))))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(names[int(rng.integers(0, 4))] if rng.random() < 0.08 else topic)
    channel = [str(c) for c in rng.choice(["email", "chat", "phone"], rows)]
    return pa.table({"message": texts, "channel": channel, "topic": labels})


# (name, table builder, target, kind, learner module)
SETS = [
    ("wine", wine, "cultivar", "classification", "tabular-learner"),
    ("cancer", cancer, "diagnosis", "classification", "tabular-learner"),
    ("diabetes", diabetes, "progression", "regression", "tabular-learner"),
    ("tickets", tickets, "topic", "text", "text-classifier"),
]


# baselines -------------------------------------------------------------------------------
def preprocessing(table: pa.Table, target: str, text: bool) -> object:
    """Numbers: median imputation + scaling; strings: one-hot (or TF-IDF for the text)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [n for n in table.column_names if n != target and _is_number(table, n)]
    strings = [n for n in table.column_names if n != target and n not in numbers]
    parts = []
    if numbers:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                      numbers))  # fmt: skip
    for name in strings:
        if text and name == "message":
            parts.append(("text", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), name))
        else:
            parts.append((name, OneHotEncoder(handle_unknown="ignore"), [name]))
    return ColumnTransformer(parts)


def _is_number(table: pa.Table, name: str) -> bool:
    kind = table.schema.field(name).type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def baselines(kind: str) -> dict[str, object]:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import LinearSVC

    if kind == "regression":
        return {
            "ridge": Ridge(),
            "random forest": RandomForestRegressor(n_estimators=300, random_state=0, n_jobs=1),
            "hist boosting": HistGradientBoostingRegressor(random_state=0),
        }
    found = {
        "logistic": LogisticRegression(max_iter=5000),
        "random forest": RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1),
    }
    if kind == "text":
        found["linear SVM"] = LinearSVC()
    else:
        found["hist boosting"] = HistGradientBoostingClassifier(random_state=0)
    return found


def fit_baselines(train: pa.Table, test: pa.Table, target: str, kind: str) -> list[dict]:
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    x_train, x_test = train.drop([target]).to_pandas(), test.drop([target]).to_pandas()
    y_train, y_test = train.column(target).to_numpy(), test.column(target).to_numpy()
    out = []
    for name, model in baselines(kind).items():
        pipeline = make_pipeline(preprocessing(train, target, kind == "text"), model)
        dense = name == "hist boosting"
        if dense:  # HistGradientBoosting takes a dense matrix
            pipeline.steps[0][1].set_params(sparse_threshold=0)
        started = time.perf_counter()
        with threadpool_limits(1):  # one thread, as reef's learners (a fair fit time)
            pipeline.fit(x_train, y_train)
        seconds = time.perf_counter() - started
        predicted = pipeline.predict(x_test)
        out.append({"name": name, "score": score(kind, y_test, predicted), "fit_s": seconds})
    return out


def score(kind: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    """Accuracy, or RMSE for regression."""
    if kind == "regression":
        return float(np.sqrt(np.mean((np.asarray(truth, float) - predicted) ** 2)))
    return float(np.mean(np.asarray(truth).astype(str) == np.asarray(predicted).astype(str)))


# the numbers-only model (for the latency comparison) ---------------------------------------
def numbers_only(work: Path, name: str, table: pa.Table, target: str, kind: str) -> Path | None:
    """The same boosting estimator over the numeric columns only, exported in the old
    layout (one float32 input `x`): what raw-row serving is compared with."""
    from reef.learners import estimator
    from reef.runtime.export import export_model

    numbers = [n for n in table.column_names if n != target and _is_number(table, n)]
    if not numbers:
        return None
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in numbers])
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isnan(x), np.nanmedian(x, axis=0), x).astype(np.float32)  # requests: too
    y = table.column(target).to_numpy(zero_copy_only=False)
    classifier = kind != "regression"
    model = estimator("boosting", classifier, 0)
    model.fit(x, y.astype(str) if classifier else y)
    classes = [str(c) for c in model.classes_] if classifier else None
    export_model(model, x, work / f"{name}-numbers", numbers, classes)
    return work / f"{name}-numbers"


def register_numbers_only(data: Path, models: dict[str, Path]) -> None:
    """Register the numbers-only models into a fresh data dir before the server starts."""
    from conftest import ADMIN_PASSWORD
    from reef.hub import Hub
    from reef.settings import Settings

    hub = Hub.open(Settings(data_dir=data, admin_password=ADMIN_PASSWORD), start_queue=False)
    try:
        project = hub.projects.create(PROJECT, hub.admin(), "model benchmark")
        for name, folder in models.items():
            hub.model_service.register_dir(
                project.id, f"{name}-numbers", folder, run_id=0, step_name="train",
                metrics={}, lineage={}, author="admin",
            )  # fmt: skip
    finally:
        hub.model_service.close()
        hub.close()


# reef ------------------------------------------------------------------------------------
def steps(name: str, target: str, kind: str, learner: str) -> list[dict]:
    """What the "Train a model" flow saves: split -> learner (registered) -> evaluate."""
    return [
        {"name": "split", "module": "library/split", "inputs": {"data": f"dataset:{name}"},
         "params": {"label": target, "stratify": kind != "regression", "seed": 0}},
        {"name": "train", "module": f"library/{learner}", "inputs": {"train": "split.train"},
         "params": {"target": target}, "register": name},
        {"name": "evaluate", "module": "library/evaluate",
         "inputs": {"model": "train.model", "test": "split.test"}, "params": {"label": target}},
    ]  # fmt: skip


def run_reef(client, server, work: Path, name: str, table: pa.Table, spec: tuple) -> dict:
    from conftest import wait_run

    _, _, target, kind, learner = spec
    path = work / f"{name}.parquet"
    pq.write_table(table, path)
    up = client.post(f"/api/projects/{PROJECT}/datasets", data={"name": name},
                     files={"file": (path.name, path.read_bytes())})  # fmt: skip
    up.raise_for_status()
    body = {"name": name, "steps": steps(name, target, kind, learner)}
    client.post(f"/api/projects/{PROJECT}/pipelines", json=body).raise_for_status()
    started = time.perf_counter()
    run = client.post(f"/api/projects/{PROJECT}/pipelines/{name}/runs", json={}).json()
    state = wait_run(client, PROJECT, run["id"], timeout=900)
    wall = time.perf_counter() - started
    durations = {s["name"]: _seconds(s) for s in state["steps"]}
    split = server.data / "runs" / str(run["id"]) / "split" / "outputs"
    metric = "rmse" if kind == "regression" else "accuracy"
    return {
        "error": None if state["run"]["status"] == "succeeded" else state["run"]["error"],
        "score": state["metrics"].get(metric, math.nan),
        "train_s": durations["train"],
        "run_s": wall,
        "train": pq.read_table(split / "train.parquet"),
        "test": pq.read_table(split / "test.parquet"),
    }


def _seconds(step: dict) -> float:
    """A step's wall time from its JSON (start-up, reading, fitting, export and parity)."""
    from datetime import datetime

    if not step.get("started_at") or not step.get("finished_at"):
        return math.nan
    started, finished = (datetime.fromisoformat(step[k]) for k in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def p50_ms(client, targets: list[tuple[str, list]], requests: int) -> list[float]:
    """Median wall time (ms) of sequential batch-1 predict requests to each (model, rows),
    taking turns, so that both see the same load on a shared machine."""
    times: list[list[float]] = [[] for _ in targets]
    for i in range(requests + 20):
        for j, (model, rows) in enumerate(targets):
            url = f"/api/projects/{PROJECT}/models/{model}/predict"
            started = time.perf_counter()
            answer = client.post(url, json={"rows": [rows[i % len(rows)]]})
            if i >= 20:  # the first ones warm the model and the caches
                times[j].append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return [statistics.median(t) for t in times]


def raw_rows(test: pa.Table, target: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k != target} for r in test.to_pylist()]


def number_rows(test: pa.Table, target: str, fill: pa.Table) -> list[list[float]]:
    """The numeric columns, missing cells filled with the column's median (JSON has no NaN)."""
    names = [n for n in test.column_names if n != target and _is_number(test, n)]
    medians = {n: float(np.nanmedian(np.asarray(fill.column(n).to_pylist(), float)))
               for n in names}  # fmt: skip
    return [[medians[n] if r[n] is None else float(r[n]) for n in names]
            for r in test.to_pylist()]  # fmt: skip


# the report ------------------------------------------------------------------------------
def judge(kind: str, reef_score: float, best: float) -> str:
    if kind == "regression":
        return f"{(reef_score / best - 1) * 100:+.1f}% RMSE vs best, target <= +5%: " + (
            "OK" if reef_score <= best * 1.05 else "MISSED"
        )
    gap = (best - reef_score) * 100
    return f"{-gap:+.1f} points vs best, target >= -1: " + ("OK" if gap <= 1.0 else "MISSED")


def report(results: list[dict]) -> list[str]:
    lines = [
        f"{'data':<10}{'model':<28}{'score':>10}{'train s':>10}{'p50 ms':>9}",
    ]
    for r in results:
        metric = "RMSE" if r["kind"] == "regression" else "accuracy"
        lines.append(f"{r['name']:<10}{'reef ' + r['learner']:<28}{r['reef']['score']:>10.4f}"
                     f"{r['reef']['train_s']:>10.2f}{r['raw_p50']:>9.2f}")  # fmt: skip
        for b in r["baselines"]:
            lines.append(f"{'':<10}{'sklearn ' + b['name']:<28}{b['score']:>10.4f}"
                         f"{b['fit_s']:>10.2f}{'':>9}")  # fmt: skip
        best = (min if r["kind"] == "regression" else max)(b["score"] for b in r["baselines"])
        if r["reef"]["error"]:
            lines.append(f"{'':<10}reef run FAILED: {r['reef']['error'][-300:]}")
        else:
            lines.append(f"{'':<10}{metric}: {judge(r['kind'], r['reef']['score'], best)}")
        if r["numbers_p50"] is not None:
            ratio = r["raw_p50"] / r["numbers_p50"]
            lines.append(
                f"{'':<10}predict p50 raw rows {r['raw_p50']:.2f} ms vs numbers-only "
                f"{r['numbers_p50']:.2f} ms = x{ratio:.2f}, target <= x2: "
                + ("OK" if ratio <= 2 else "MISSED")
            )
        lines.append(f"{'':<10}whole reef run (split, train, evaluate): {r['reef']['run_s']:.1f} s")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="predict requests per model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.txt")
    args = parser.parse_args()
    from conftest import modules_dir, start_server

    with tempfile.TemporaryDirectory(prefix="reef-bench-models-") as tmp:
        work = Path(tmp)
        tables = {spec[0]: spec[1]() for spec in SETS}
        numbers = {}
        for name, _, target, kind, _ in SETS:
            found = numbers_only(work, name, tables[name], target, kind)
            if found is not None:
                numbers[name] = found
        register_numbers_only(work / "data", numbers)
        server = start_server(work / "data", modules_dir(work))
        try:
            with server.client() as client:
                results = [measure(client, server, work, spec, tables, args.requests)
                           for spec in SETS]  # fmt: skip
        finally:
            server.stop()
    head = (
        f"model benchmark: reef default per task vs scikit-learn baselines on the same split; "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs shared, load average "
        f"{os.getloadavg()[0]:.1f} at the end; p50 of {args.requests} sequential batch-1 "
        "HTTP predicts"
    )
    text = "\n".join([head, "", *report(results)]) + "\n"
    args.out.write_text(text)
    print(text)


def measure(client, server, work: Path, spec: tuple, tables: dict, requests: int) -> dict:
    name, _, target, kind, learner = spec
    print(f"{name}: reef run", flush=True)
    reef = run_reef(client, server, work, name, tables[name], spec)
    print(f"{name}: baselines", flush=True)
    base = fit_baselines(reef["train"], reef["test"], target, kind)
    if reef["error"]:
        print(f"{name}: the reef run failed: {reef['error']}", flush=True)
        return {"name": name, "kind": kind, "learner": learner, "reef": reef, "baselines": base,
                "raw_p50": math.nan, "numbers_p50": None}  # fmt: skip
    targets = [(name, raw_rows(reef["test"], target))]
    if kind != "text":
        targets.append((f"{name}-numbers", number_rows(reef["test"], target, reef["train"])))
    raw, *plain = p50_ms(client, targets, requests)
    return {"name": name, "kind": kind, "learner": learner, "reef": reef, "baselines": base,
            "raw_p50": raw, "numbers_p50": plain[0] if plain else None}  # fmt: skip


if __name__ == "__main__":
    main()
