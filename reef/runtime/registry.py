"""Registering the models a run produced, and serving registered versions with onnxruntime.

Serving keeps one immutable `Plan` per (model, route) in a dict. A promotion loads the new
version first, then replaces the plan in one assignment (the hot swap): requests that already
hold the old plan finish on it, later ones get the new one, and none waits for a load.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reef.errors import InvalidInput, ReefError
from reef.model_io import ModelSchema
from reef.runtime import drift, monitoring
from reef.runtime.batch_queue import BatchQueue
from reef.runtime.steps import step_dir
from reef.runtime.traffic import Arm, Plan
from reef.store.db import now
from reef.store.models import DEFAULT_ALIAS
from reef.store.predictions import Entry, Feedback, ModelKey, PredictionLog
from reef.store.runs import Run

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.runtime.serving import Predictor
    from reef.runtime.webhooks import WebhookService

log = logging.getLogger("reef.models")
MAX_SHADOW_PENDING = 256


class ModelService:
    """Registers a run's models and serves registered versions; a promotion is announced
    through `webhooks`."""

    def __init__(self, stores: Stores, webhooks: WebhookService, flush_s: float = 1.0) -> None:
        self.stores, self.webhooks = stores, webhooks
        self._predictors: dict[tuple[int, int], Predictor] = {}
        self._plans: dict[tuple[int, str], Plan] = {}
        self._ids: dict[ModelKey, int] = {}
        self._lock = threading.Lock()  # loading predictors
        self._plan_lock = threading.Lock()  # building and swapping plans
        self.feedback = Feedback(stores.db)
        self.log = PredictionLog(stores.settings.path("predictions"), flush_s=flush_s)
        self.monitor = monitoring.Monitor(stores, self.log, self.feedback)
        self.log.on_flush = self.monitor.on_flush
        self._shadow_pool = ThreadPoolExecutor(2, thread_name_prefix="reef-shadow")
        self._shadow_pending = 0
        self._shadow_lock = threading.Lock()
        self.batches = BatchQueue(self)

    def close(self) -> None:
        """Finish the running batch job and shadow predictions, and write what the prediction
        log still holds."""
        self.batches.close()
        self._shadow_pool.shutdown(wait=True)
        self.log.close()

    def flush(self, timeout: float = 30) -> None:
        """Wait for pending shadow predictions, then for the log to write what it holds."""
        deadline = time.monotonic() + timeout
        while self._shadow_pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self.log.flush(timeout)

    # --- registering --------------------------------------------------------------------------

    def register_run(self, run: Run) -> list[tuple[str, int]]:
        """Register a version for every step of `run` that asks for it (`register: NAME`)."""
        done = []
        lineage = self.lineage(run)
        for step in run.spec["steps"]:
            if not step.get("register"):
                continue
            model_dir = self._model_dir(run, step)
            if self._reuse(run, step, model_dir) is not None:
                continue  # the model is the latest version's: nothing new to promote
            metrics, sources = self.version_metrics(run, step["name"])
            version = self.register_dir(
                run.project_id,
                step["register"],
                model_dir,
                run_id=run.id,
                step_name=step["name"],
                metrics=metrics,
                metrics_from=sources,
                lineage={**lineage, "step": step["name"]},
                author=run.created_by,
                train=self._training_inputs(run, step, model_dir),
            )
            done.append((step["register"], version))
        return done

    def _reuse(self, run: Run, step: dict, model_dir: Path) -> int | None:
        """The latest version of the step's model when the step's model files are
        byte-identical to it (same content hash): the run is linked to that version and its
        log says so; None when the model is new."""
        name = step["register"]
        digest, _ = self.stores.artifacts.put_file(model_dir / "model.onnx")
        schema = json.loads((model_dir / "schema.json").read_text())
        version = self.stores.models.same_as_latest(run.project_id, name, digest, schema)
        if version is None:
            return None
        self.stores.models.record_reuse(run.project_id, name, version, run.id, step["name"])
        note = f"\n[reef] the model file is identical to {name} v{version}: no new version\n"
        log_path = step_dir(self.stores.settings, run.id, step["name"]) / "log.txt"
        with log_path.open("a") as log_file:
            log_file.write(note)
        return version

    def version_metrics(self, run: Run, step_name: str) -> tuple[dict[str, float], list[str]]:
        """What a version registered from `step_name` records: that step's metrics, then those
        of each evaluator whose `model` input is that step's output (in pipeline order; an
        evaluator's value wins a key both log). A step that outputs a model of its own (say a
        fine-tuning step) is no evaluator. Never another step's. Returns (metrics, the steps
        they came from)."""
        sources = [step_name] + [
            s.name
            for s in self.stores.runs.steps(run.id)
            if str(s.inputs.get("model", "")).startswith(f"{step_name}.")
            and "model" not in s.outputs.values()
        ]
        values = self.stores.runs.step_metrics(run.id, sources)
        merged: dict[str, float] = {}
        for source in sources:
            merged.update({key: v for (step, key), v in values.items() if step == source})
        return merged, sources

    def register_dir(
        self,
        project_id: int,
        name: str,
        model_dir: Path,
        *,
        run_id: int,
        step_name: str,
        metrics: dict,
        lineage: dict,
        author: str,
        train: np.ndarray | None = None,
        metrics_from: list[str] | None = None,
    ) -> int:
        """Register an exported model directory (model.onnx + schema.json) as the next
        version; `metrics_from` names the steps `metrics` came from (default: `step_name`);
        `train` (the training inputs) gives the reference that drift compares with."""
        onnx_digest, _ = self.stores.artifacts.put_file(model_dir / "model.onnx")
        schema = json.loads((model_dir / "schema.json").read_text())
        reference = None if train is None else self._reference(train, ModelSchema(schema))
        version = self.stores.models.register(
            project_id,
            name,
            run_id=run_id,
            step_name=step_name,
            onnx_digest=onnx_digest,
            schema=schema,
            metrics=metrics,
            metrics_from=[step_name] if metrics_from is None else metrics_from,
            lineage=lineage,
            author=author,
            reference=reference,
        )
        project = self.stores.project_name(project_id)
        target = f"model {name} v{version}"
        self.stores.audit.record(author, "model.register", target, project, run_id=run_id)
        self.refresh(self.stores.models.model_id(project_id, name))  # "latest" may have moved
        return version

    def _reference(self, train: np.ndarray, schema: ModelSchema) -> dict[str, Any]:
        """What drift is measured against: quantile bins per number and shares per category
        (PSI), and a sample of training rows kept as an .npy artifact (KS)."""
        names = [f.name for f in drift.monitored(schema)]
        reference = drift.reference(train, names, drift.categories(schema))
        sample = drift.training_sample(train)
        buffer = io.BytesIO()
        np.save(buffer, sample, allow_pickle=False)
        buffer.seek(0)
        digest, _ = self.stores.artifacts.put_stream(buffer)
        return {**reference, "sample": {"digest": digest, "rows": len(sample)}}

    def _model_dir(self, run: Run, step: dict) -> Path:
        steps = {s.name: s for s in self.stores.runs.steps(run.id)}
        outputs = steps[step["name"]].outputs
        name = next((k for k, kind in outputs.items() if kind == "model"), None)
        if name is None:
            raise ValueError(f"step '{step['name']}' has no model output to register")
        return step_dir(self.stores.settings, run.id, step["name"]) / "outputs" / name

    def _training_inputs(self, run: Run, step: dict, model_dir: Path) -> np.ndarray | None:
        """The feature columns of the step's first Parquet input that has them all."""
        import pyarrow.parquet as pq

        schema = ModelSchema.load(model_dir)
        for path in self._input_files(run, step):
            if path.is_file() and set(schema.names) <= set(pq.read_schema(path).names):
                table = pq.read_table(path, columns=schema.names)
                if schema.raw_rows:
                    return drift.monitored_matrix(schema, schema.feeds(table))
                return np.column_stack(
                    [table[f].to_numpy(zero_copy_only=False) for f in schema.names]
                )
        return None

    def _input_files(self, run: Run, step: dict) -> list[Path]:
        """Where the step's table inputs lie: copied datasets, or upstream steps' outputs."""
        settings, files = self.stores.settings, []
        for key, ref in sorted(step.get("inputs", {}).items()):
            if ref.startswith("dataset:"):
                files.append(step_dir(settings, run.id, step["name"]) / "inputs" / f"{key}.parquet")
            elif "." in ref:
                upstream, output = ref.split(".", 1)
                files.append(step_dir(settings, run.id, upstream) / "outputs" / f"{output}.parquet")
        return files

    def lineage(self, run: Run) -> dict[str, Any]:
        steps = self.stores.runs.steps(run.id)
        inputs = [v for s in steps for v in s.inputs.values()]
        return {
            "run_id": run.id,
            "modules": [
                {"step": s.name, "module": s.module, "commit": s.commit_sha} for s in steps
            ],
            "datasets": sorted(
                {v.removeprefix("dataset:") for v in inputs if v.startswith("dataset:")}
            ),
        }

    # --- loading ------------------------------------------------------------------------------

    def predictor(self, model_id: int, version: int) -> Predictor:
        """The loaded (and warmed up) predictor of a version; versions never change."""
        from reef.runtime.serving import Predictor

        with self._lock:
            if (model_id, version) not in self._predictors:
                loaded = Predictor(self._materialize(model_id, version))
                loaded.warm_up()
                self._predictors[model_id, version] = loaded
            return self._predictors[model_id, version]

    def _materialize(self, model_id: int, version: int) -> Path:
        row = self.stores.models.version(model_id, version)
        dest = self.stores.settings.path("serving", str(model_id), str(version))
        if not (dest / "model.onnx").exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.stores.artifacts.copy_to(row["onnx_digest"], tmp / "model.onnx")
            (tmp / "schema.json").write_text(json.dumps(row["schema"]))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        return dest

    def model_id(self, project: str, name: str) -> int:
        """The id of model `project/name` (remembered: models are never renamed)."""
        key = (project, name)
        if key not in self._ids:
            self._ids[key] = self.stores.models.model_id(self.stores.projects.get(project).id, name)
        return self._ids[key]

    def is_warm(self, project: str, name: str, alias: str | None) -> bool:
        """Whether a predict call needs neither the database nor a model load (its plan is
        built): then the server may answer it without a thread hop."""
        model_id = self._ids.get((project, name))
        return model_id is not None and (model_id, alias or "") in self._plans

    # --- serving plans (the hot swap) ----------------------------------------------------------

    def plan(self, model_id: int, alias: str | None = None) -> Plan:
        """The plan for requests naming `alias` (None: the default route). Lock-free when
        cached; a miss builds it under the plan lock."""
        key = (model_id, alias or "")
        found = self._plans.get(key)
        if found is not None:
            return found
        with self._plan_lock:
            if key not in self._plans:
                self._plans[key] = self._build(model_id, alias or "")
            return self._plans[key]

    def refresh(self, model_id: int) -> None:
        """Rebuild the model's cached plans after an alias or traffic change and swap each in."""
        with self._plan_lock:
            for key in [k for k in self._plans if k[0] == model_id]:
                try:
                    self._plans[key] = self._build(model_id, key[1])
                except ReefError:
                    del self._plans[key]  # e.g. the alias is gone: the next request says so

    def _build(self, model_id: int, route: str) -> Plan:
        version = self.stores.models.serving_version(model_id, route or None)
        main = Arm(version, self.predictor(model_id, version))
        traffic = self.stores.models.settings(model_id)["traffic"]
        if route not in ("", DEFAULT_ALIAS) or not traffic or traffic["version"] == version:
            return Plan(main)
        name = "shadow" if traffic["mode"] == "shadow" else "candidate"
        other = Arm(traffic["version"], self.predictor(model_id, traffic["version"]), name)
        return Plan(main, other, traffic["mode"], traffic["percent"])

    # --- predicting ---------------------------------------------------------------------------

    def predict(
        self,
        project: str,
        name: str,
        rows: Any,
        alias: str | None = None,
        key: str | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Validate and predict `rows` with the version the plan picks; log it off the request
        path. `key` makes an A/B split sticky per caller; `source` "try" marks a person's
        try-it call from the model page (logged, but kept out of drift)."""
        plan = self.plan(self.model_id(project, name), alias)
        arm, shadow = plan.choose(key)
        started = time.perf_counter()
        inputs = arm.predictor.inputs(rows)
        y = arm.predictor.run_inputs(inputs)
        labels = arm.predictor.labels(y)
        latency = (time.perf_counter() - started) * 1000
        request_id = uuid.uuid4().hex
        entry = Entry(
            (project, name), request_id, now(), arm.version, arm.name, latency, inputs.x, y,
            labels, source,
        )  # fmt: skip
        self.log.append(entry)
        if shadow is not None:
            self._shadow((project, name), shadow, rows, request_id)
        answer = {
            "request_id": request_id,
            "predictions": arm.predictor.results(y, labels),
            "model_version": arm.version,
            "arm": arm.name,
            "latency_ms": round(latency, 3),
        }
        if inputs.unseen:  # categories not seen in training: answered (the graph ignores them)
            answer["unseen_categories"] = dict(inputs.unseen)
            log.info("%s/%s: unseen categories %s", project, name, dict(inputs.unseen))
        return answer

    def _shadow(self, key: ModelKey, arm: Arm, rows: Any, request_id: str) -> None:
        """Let the shadow version predict the same rows in the background, for the log only."""
        with self._shadow_lock:
            if self._shadow_pending >= MAX_SHADOW_PENDING:
                return
            self._shadow_pending += 1
        self._shadow_pool.submit(self._shadow_predict, key, arm, rows, request_id)

    def _shadow_predict(self, key: ModelKey, arm: Arm, rows: Any, request_id: str) -> None:
        try:
            started = time.perf_counter()
            inputs = arm.predictor.inputs(rows)
            y = arm.predictor.run_inputs(inputs)
            latency = (time.perf_counter() - started) * 1000
            labels = arm.predictor.labels(y)
            self.log.append(
                Entry(key, request_id, now(), arm.version, "shadow", latency, inputs.x, y, labels)
            )
        except Exception:
            log.warning("shadow v%s of %s failed", arm.version, key, exc_info=True)
        finally:
            with self._shadow_lock:
                self._shadow_pending -= 1

    def add_feedback(self, project: str, name: str, data: Any, author: str) -> int:
        """Attach true labels to logged predictions: {"request_id", "label", "row"?},
        {"request_id", "labels": [...]} or a list of these. Returns the rows labelled."""
        items = data if isinstance(data, list) else [data]
        rows = [r for item in items for r in _feedback_rows(item)]
        if not rows:
            raise InvalidInput("send at least one label")
        return self.feedback.add(self.model_id(project, name), rows, author)


def _feedback_rows(item: Any) -> list[tuple[str, int, str]]:
    if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
        raise InvalidInput('send {"request_id": "...", "label": ...} (or "labels": [...])')
    if "labels" in item:
        if not isinstance(item["labels"], list):
            raise InvalidInput("'labels' must be a list, one label per row of the request")
        return [(item["request_id"], i, str(lab)) for i, lab in enumerate(item["labels"])]
    if "label" not in item or item["label"] is None:
        raise InvalidInput("send 'label' (the true label) or 'labels'")
    row = item.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        raise InvalidInput("'row' must be a row number (0 for the first row of the request)")
    return [(item["request_id"], row, str(item["label"]))]
