"""Registering the models a run produced, and serving registered versions with onnxruntime."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reef.store.runs import Run

if TYPE_CHECKING:
    from reef.hub import Hub
    from reef.runtime.serving import Predictor


class ModelService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._predictors: dict[tuple[int, int], Predictor] = {}
        self._lock = threading.Lock()

    def register_run(self, run: Run) -> list[tuple[str, int]]:
        """Register a version for every step of `run` that asks for it (`register: NAME`)."""
        done = []
        lineage = self.lineage(run)
        metrics = self.hub.runs.latest_metrics(run.id)
        for step in run.spec["steps"]:
            if not step.get("register"):
                continue
            model_dir = self._model_dir(run, step)
            onnx_digest, _ = self.hub.artifacts.put_file(model_dir / "model.onnx")
            schema = json.loads((model_dir / "schema.json").read_text())
            version = self.hub.models.register(
                run.project_id,
                step["register"],
                run_id=run.id,
                step_name=step["name"],
                onnx_digest=onnx_digest,
                schema=schema,
                metrics=metrics,
                lineage={**lineage, "step": step["name"]},
                author=run.created_by,
            )
            self.hub.audit.record(
                run.created_by,
                "model.register",
                f"model {step['register']} v{version}",
                self.hub.project_name(run.project_id),
                run_id=run.id,
            )
            done.append((step["register"], version))
        return done

    def _model_dir(self, run: Run, step: dict) -> Path:
        steps = {s.name: s for s in self.hub.runs.steps(run.id)}
        outputs = steps[step["name"]].outputs
        name = next((k for k, kind in outputs.items() if kind == "model"), None)
        if name is None:
            raise ValueError(f"step '{step['name']}' has no model output to register")
        return self.hub.orchestrator.step_dir(run.id, step["name"]) / "outputs" / name

    def lineage(self, run: Run) -> dict[str, Any]:
        steps = self.hub.runs.steps(run.id)
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

    def predictor(self, model_id: int, version: int) -> Predictor:
        """The loaded predictor of a version (loaded once; versions never change)."""
        from reef.runtime.serving import Predictor

        with self._lock:
            if (model_id, version) not in self._predictors:
                self._predictors[model_id, version] = Predictor(
                    self._materialize(model_id, version)
                )
            return self._predictors[model_id, version]

    def _materialize(self, model_id: int, version: int) -> Path:
        row = self.hub.models.version(model_id, version)
        dest = self.hub.settings.path("serving", str(model_id), str(version))
        if not (dest / "model.onnx").exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.hub.artifacts.copy_to(row["onnx_digest"], tmp / "model.onnx")
            (tmp / "schema.json").write_text(json.dumps(row["schema"]))
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        return dest
