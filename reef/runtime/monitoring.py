"""Monitoring served models: request rate, latency, the prediction distribution, live
accuracy from feedback, and input drift per feature against the training data: the PSI and
the two-sample Kolmogorov-Smirnov statistic.

At registration each version keeps its training data's decile bins per feature (and category
shares for raw-row models; see `reef.runtime.drift`) and a random sample of its training
rows (an artifact). Drift compares the inputs logged for the serving version in a recent
window with the bins (PSI) and with the sample (KS); features past either threshold raise an
alert that the project page lists.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from reef.errors import InvalidInput
from reef.runtime.drift import drift
from reef.runtime.events import ALERT_OPENED
from reef.store.db import now
from reef.store.predictions import Feedback, ModelKey, PredictionLog

if TYPE_CHECKING:
    from reef.hub import Hub, Stores

DEFAULTS: dict[str, Any] = {
    "psi_threshold": 0.2,  # PSI above this on any feature raises a drift alert
    "ks_threshold": 0.2,  # KS statistic above this on any feature raises a ks alert
    "min_rows": 100,  # logged rows needed before drift is judged
    "window_s": 3600,  # how far back monitoring looks
    "min_accuracy": None,  # live accuracy below this (with feedback) raises an alert
    "min_labels": 30,  # labelled rows needed before accuracy is judged
}
# (lowest, highest, whole number) allowed for each setting; null restores the default
LIMITS: dict[str, tuple[float, float, bool]] = {
    "psi_threshold": (1e-6, math.inf, False),
    "ks_threshold": (1e-6, 1.0, False),
    "min_rows": (1, math.inf, True),
    "window_s": (1, math.inf, True),
    "min_accuracy": (0.0, 1.0, False),
    "min_labels": (1, math.inf, True),
}
_EPS = 1e-4
_STATS_COLUMNS = ["request_id", "row", "at", "version", "arm", "latency_ms", "label"]


def parse_config(data: Any) -> dict[str, Any]:
    """Validate monitor settings: some of DEFAULTS' keys, each a number within LIMITS or
    null (back to its default)."""
    if not isinstance(data, dict) or not data or not set(data) <= set(DEFAULTS):
        raise InvalidInput(f"send some of {', '.join(DEFAULTS)}")
    for key, value in data.items():
        if value is None:
            continue
        low, high, whole = LIMITS[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidInput(f"'{key}' must be a number (or null for the default)")
        if whole and value != int(value):
            raise InvalidInput(f"'{key}' must be a whole number, got {value}")
        if not low <= value <= high:
            upper = "" if high == math.inf else f" and at most {high:g}"
            raise InvalidInput(f"'{key}' must be at least {low:g}{upper}, got {value}")
    return data


class Monitor:
    """Statistics over a model's prediction log, and the alerts they raise."""

    def __init__(
        self, hub: Stores, log: PredictionLog, feedback: Feedback, check_every_s: float = 5.0
    ) -> None:
        self.hub, self.log, self.feedback = hub, log, feedback
        self.check_every_s = check_every_s
        self._checked: dict[ModelKey, float] = {}
        self._samples: dict[tuple[int, int], np.ndarray | None] = {}
        self._lock = threading.Lock()

    def config(self, model_id: int) -> dict[str, Any]:
        return {**DEFAULTS, **(self.hub.models.settings(model_id)["monitor"] or {})}

    def stats(self, key: ModelKey, model_id: int) -> dict[str, Any]:
        """What the model page shows: traffic, latency, outputs and accuracy per version."""
        config = self.config(model_id)
        with self._connect(key, model_id, config) as con:
            live = {
                "requests": _q(con, "SELECT count(DISTINCT request_id) AS n FROM t")[0]["n"],
                "rate": _q(con, _RATE),
                "latency_ms": _q(con, _LATENCY)[0],
                "versions": _versions(con),
            }
        return {
            "window_s": config["window_s"],
            "config": config,
            **live,
            "drift": self.drift(key, model_id, config),
            "alerts": self.hub.models.alerts(self.hub.projects.get(key[0]).id, model_id),
        }

    def drift(self, key: ModelKey, model_id: int, config: dict[str, Any]) -> dict[str, Any]:
        """PSI and KS per feature of the serving version's recent inputs against its training
        data; `drifted` and `ks_drifted` are the features past each threshold."""
        version = self.hub.models.serving_version(model_id)
        ref = self.hub.models.version(model_id, version)["reference"]
        since = now() - timedelta(seconds=config["window_s"])
        table = self.log.read(key, since, ["version", "inputs", "source"])
        by_people = pa.compute.equal(table["source"], "try").fill_null(False)  # try-it calls
        table = table.filter(pa.compute.and_(pa.compute.equal(table["version"], version),
                                             pa.compute.invert(by_people)))  # fmt: skip
        result = {"version": version, "rows": table.num_rows, "features": [], "drifted": []}
        result["ks_drifted"] = []
        if ref is None or table.num_rows == 0:
            return {**result, "note": "no reference data" if ref is None else "no traffic yet"}
        sample = self.sample(model_id, version, ref)
        scores = drift(_matrix(table["inputs"]), ref, sample)
        result["features"] = sorted(scores, key=lambda f: -_severity(f, config))
        result["drifted"] = [f for f in scores if f["psi"] > config["psi_threshold"]]
        ks_over = [f for f in scores if f["ks"] is not None and f["ks"] > config["ks_threshold"]]
        result["ks_drifted"] = sorted(ks_over, key=lambda f: -f["ks"])
        if sample is None:
            result["note"] = "no training sample kept with this version: KS not measured"
        return result

    def sample(self, model_id: int, version: int, ref: dict[str, Any]) -> np.ndarray | None:
        """The training sample kept with a version (read once: versions never change)."""
        if (model_id, version) not in self._samples:
            digest = (ref.get("sample") or {}).get("digest")
            found = None
            if digest:
                with self.hub.artifacts.open(digest) as f:
                    found = np.load(f, allow_pickle=False)
            self._samples[model_id, version] = found
        return self._samples[model_id, version]

    def check(self, key: ModelKey, model_id: int) -> list[dict[str, Any]]:
        """Raise or clear the model's drift (PSI), ks and accuracy alerts; returns the open
        ones."""
        config = self.config(model_id)
        project_id = self.hub.projects.get(key[0]).id
        before = {a["kind"] for a in self.hub.models.alerts(project_id, model_id)}
        found = self.drift(key, model_id, config)
        self._judge_drift(model_id, config, found, "drift", "psi")
        self._judge_drift(model_id, config, found, "ks", "ks")
        self._check_accuracy(key, model_id, config, found["version"])
        alerts = self.hub.models.alerts(project_id, model_id)
        opened = [a for a in alerts if a["kind"] not in before]
        if opened:  # the pipelines that train the model pause now, not at their next trigger
            self.hub.events.emit(ALERT_OPENED, project_id, key[1], opened[0])
        return alerts

    def _judge_drift(
        self, model_id: int, config: dict[str, Any], found: dict[str, Any], kind: str, stat: str
    ) -> None:
        """Raise alert `kind` when enough rows were logged and a feature's `stat` (psi or ks)
        passes its threshold; clear it when enough rows say otherwise, or none came."""
        drifted = found["drifted"] if stat == "psi" else found["ks_drifted"]
        threshold, rows = config[f"{stat}_threshold"], found["rows"]
        if rows >= config["min_rows"] and drifted:
            top = drifted[0]
            message = (
                f"input drift on {len(drifted)} of {len(found['features'])} features "
                f"({stat.upper()} {top[stat]:.2f} on {top['feature']}; threshold {threshold})"
            )
            detail = {"features": drifted[:20], "rows": rows, "statistic": stat}
            self.hub.models.raise_alert(model_id, kind, found["version"], message, detail)
        elif rows >= config["min_rows"] or not rows:
            self.hub.models.clear_alert(model_id, kind)

    def _check_accuracy(
        self, key: ModelKey, model_id: int, config: dict[str, Any], version: int
    ) -> None:
        if config["min_accuracy"] is None:
            self.hub.models.clear_alert(model_id, "accuracy")
            return
        live = next(
            (v for v in self.stats_versions(key, model_id, config) if v["version"] == version),
            None,
        )
        if live is None or (live["labelled"] or 0) < config["min_labels"]:
            return
        if live["accuracy"] < config["min_accuracy"]:
            message = (
                f"live accuracy {live['accuracy']:.3f} of v{version} is below "
                f"{config['min_accuracy']} ({live['labelled']} labelled rows)"
            )
            self.hub.models.raise_alert(model_id, "accuracy", version, message, live)
        else:
            self.hub.models.clear_alert(model_id, "accuracy")

    def stats_versions(
        self, key: ModelKey, model_id: int, config: dict[str, Any]
    ) -> list[dict[str, Any]]:
        with self._connect(key, model_id, config) as con:
            return _versions(con)

    def _connect(
        self, key: ModelKey, model_id: int, config: dict[str, Any]
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the log window as `t` and the feedback as `f`."""
        since = now() - timedelta(seconds=config["window_s"])
        con = duckdb.connect()
        con.register("t", self.log.read(key, since, _STATS_COLUMNS))
        con.register("f", self.feedback.table(model_id))
        return con

    def on_flush(self, keys: list[ModelKey]) -> None:
        """After the log writer wrote some models' rows: check them, at most every few s."""
        for key in keys:
            with self._lock:
                if time.monotonic() - self._checked.get(key, -math.inf) < self.check_every_s:
                    continue
                self._checked[key] = time.monotonic()
            project = self.hub.projects.get(key[0])
            self.check(key, self.hub.models.model_id(project.id, key[1]))


def alerts(hub: Hub, project: str) -> list[dict[str, Any]]:
    """Open alerts of every model of `project` (drift, live accuracy), for the project page:
    each {"model", "kind", "version", "message", "detail", "raised_at", "url"}."""
    rows = hub.models.alerts(hub.projects.get(project).id)
    return [{**r, "url": f"/projects/{project}/models/{r['model']}#monitoring"} for r in rows]


def _severity(score: dict[str, Any], config: dict[str, Any]) -> float:
    """How far past its thresholds a feature's drift is (1 = at a threshold)."""
    psi_part = score["psi"] / max(config["psi_threshold"], _EPS)
    return max(psi_part, (score["ks"] or 0.0) / max(config["ks_threshold"], _EPS))


def _matrix(inputs: pa.ChunkedArray) -> np.ndarray:
    flat = pa.concat_arrays([c.flatten() for c in inputs.chunks]).to_numpy(zero_copy_only=False)
    return flat.reshape(len(inputs), -1)


def _q(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


_RATE = (
    "SELECT date_trunc('minute', \"at\") AS minute, count(DISTINCT request_id) AS requests "
    "FROM t WHERE arm <> 'shadow' GROUP BY 1 ORDER BY 1"
)
_LATENCY = (
    "SELECT quantile_cont(ms, 0.5) AS p50, quantile_cont(ms, 0.95) AS p95, "
    "quantile_cont(ms, 0.99) AS p99 FROM "
    "(SELECT any_value(latency_ms) AS ms FROM t WHERE arm <> 'shadow' GROUP BY request_id)"
)
_BY_VERSION = (
    "SELECT version, arm, count(*) AS rows, count(DISTINCT request_id) AS requests, "
    "avg(latency_ms) AS mean_latency_ms FROM t GROUP BY ALL ORDER BY version, arm"
)
_LABELS = "SELECT version, arm, label, count(*) AS n FROM t GROUP BY ALL ORDER BY label"
_ACCURACY = (
    "SELECT version, arm, count(*) AS labelled, avg((t.label = f.truth)::INTEGER) AS accuracy "
    'FROM t JOIN f ON t.request_id = f.request_id AND t."row" = f."row" GROUP BY ALL'
)


def _versions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per (version, arm): rows, requests, latency, label shares, live accuracy."""
    out = {(r["version"], r["arm"]): {**r, "labels": {}} for r in _q(con, _BY_VERSION)}
    for r in _q(con, _LABELS):
        group = out[r["version"], r["arm"]]
        group["labels"][r["label"] or ""] = round(r["n"] / group["rows"], 4)
    for r in _q(con, _ACCURACY):
        out[r["version"], r["arm"]].update(labelled=r["labelled"], accuracy=r["accuracy"])
    return [{"labelled": 0, "accuracy": None, **v} for v in out.values()]
