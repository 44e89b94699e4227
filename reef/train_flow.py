"""The "Train a model" flow as data: a detected (or checked) task in, a pipeline spec out.

Pure: no server, no stores. The server (reef/server/train.py) detects the task with
`reef.tasks`, calls `pipeline_for` with the names of the library modules that exist, saves the
spec as an ordinary pipeline (editable in the builder and as YAML) and runs it.

The pipeline is split -> model -> evaluate, the model step registered under the pipeline's
name, so its version appears on the model page when the run succeeds:

- classification and regression: `library/tabular-learner` (numbers, categories, missing
  values and dates inside the model); where that module is not installed, classification falls
  back to `library/gradient-boosting` on the numeric columns;
- text classification: `library/text-classifier`;
- image classification: `library/image-classifier` (the test images go through
  `library/images-to-pixels` to the evaluator).

A task whose module is not installed still gets its pipeline: saving it then fails with the
planner's message naming the missing module, rather than the flow refusing the task itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reef.tasks import Task

TEST_SIZE = 0.2
SEED = 0
NAME_CHARS = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Plan:
    """What the flow will save and run, in words and as a spec."""

    name: str  # the pipeline's name, and the model's
    model_module: str
    spec: dict[str, Any]
    summary: str  # one sentence for the page


def flow_name(target: str) -> str:
    """`predict-<target>` as a pipeline/model name: lower case, digits, '-' and '_'."""
    slug = NAME_CHARS.sub("-", target.lower()).strip("-_") or "target"
    return f"predict-{slug}"[:63].rstrip("-_")


def pipeline_for(dataset: str, task: Task, modules: set[str], name: str | None = None) -> Plan:
    """The pipeline that trains, registers and evaluates a model for `task` on `dataset`.

    `modules` are the library module names installed (e.g. {"split", "tabular-learner"}).
    """
    name = name or flow_name(task.target)
    model_module, model_step = _model_step(task, modules, name)
    images = task.kind == "image_classification"
    steps = [
        _split_step(dataset, task),
        model_step,
        *([_pixels_step(task)] if images else []),  # the test images as the model's pixels
        {
            "name": "evaluate",
            "module": "library/evaluate",
            "inputs": {"model": "train.model", "test": "pixels.data" if images else "split.test"},
            "params": {"label": task.target},
        },
    ]
    description = (
        f"Made by 'Train a model' on {dataset}: {task.plain} from {task.target!r} "
        f"({len(task.features)} columns used)"
    )
    spec = {"description": description, "seed": SEED, "steps": steps}
    return Plan(name, model_module, spec, f"{model_module} will {task.plain} ({task.target!r})")


def _split_step(dataset: str, task: Task) -> dict[str, Any]:
    return {
        "name": "split",
        "module": "library/split",
        "inputs": {"data": f"dataset:{dataset}"},
        "params": {
            "label": task.target,
            "stratify": task.kind != "regression",
            "test_size": TEST_SIZE,
            "seed": SEED,
        },
    }


def _pixels_step(task: Task) -> dict[str, Any]:
    return {
        "name": "pixels",
        "module": "library/images-to-pixels",
        "inputs": {"data": "split.test"},
        "params": {"label": task.target},
    }


def _model_step(task: Task, modules: set[str], name: str) -> tuple[str, dict[str, Any]]:
    """(module, step) for the task; `exclude` lists what the person left out."""
    excluded = [c.name for c in task.left_out]
    if task.kind == "image_classification":
        module, params = "image-classifier", {"label": task.target, "seed": SEED}
    elif task.kind == "text_classification":
        module = "text-classifier"
        params = {"target": task.target, "exclude": excluded, "seed": SEED}
    elif "tabular-learner" in modules or task.kind == "regression":
        module = "tabular-learner"
        params = {"target": task.target, "task": task.kind, "exclude": excluded, "seed": SEED}
    else:
        module, params = "gradient-boosting", {"label": task.target, "seed": SEED}
    step = {
        "name": "train",
        "module": f"library/{module}",
        "inputs": {"train": "split.train"},
        "params": params,
        "register": name,
    }
    return module, step
