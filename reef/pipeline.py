"""Pipeline specs: steps with named inputs wired to datasets or to earlier steps' outputs.

A spec is plain data (JSON or YAML):

    {"steps": [
      {"name": "split", "module": "library/split", "params": {"test_size": 0.25},
       "inputs": {"data": "dataset:digits@1"}},
      {"name": "train", "module": "library/mlp-classifier", "inputs": {"train": "split.train"},
       "register": "digits"},
      {"name": "evaluate", "module": "library/evaluate",
       "inputs": {"model": "train.model", "test": "split.test"}}]}

An input is `dataset:NAME` (latest version when the run starts), `dataset:NAME@V`,
`dataset:NAME@TAG` (the version the tag names when the run starts), or
`STEP.OUTPUT`. Steps form a DAG; a run executes each step once all it reads is ready.
A step with `"require_valid": true` refuses a dataset input whose version failed its
dataset's validation rules (see docs/datasets.md). `"gpus": N` and `"memory_mb": M` say
what a step needs (it waits for free GPUs and is killed above M MiB resident), and
`"retries": K` starts a failed step again up to K times. A top-level `"priority"` (-100 to
100) puts the run's steps ahead of lower-priority runs' in the queue. `"publish": {"train":
"flowers-train"}` makes a step's table output a new version of a project dataset when the
run succeeds (see reef/runtime/publish.py). A top-level `"promote": "production"` points
that alias at each model the run registers when its gates pass, and asks a maintainer to
approve when they fail (see reef/runtime/approvals.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reef.errors import InvalidInput

STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MODULE_REF = re.compile(r"^(?:([a-z0-9][a-z0-9_.-]*)/)?([a-z0-9][a-z0-9_.-]*)(?:@([\w./-]+))?$")
DATASET_REF = re.compile(r"^dataset:([a-z0-9][a-z0-9_.-]*)(?:@(\d+|[A-Za-z][\w.-]*))?$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
OUTPUT_REF = re.compile(r"^([a-z0-9][a-z0-9_-]*)\.([a-z0-9_]+)$")
MAX_RETRIES = 10
MAX_PRIORITY = 100  # runs with a higher priority start their steps first


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int | str | None  # a version number or a tag

    def __str__(self) -> str:
        return f"dataset:{self.name}" + (f"@{self.version}" if self.version else "")


@dataclass(frozen=True)
class OutputRef:
    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


@dataclass(frozen=True)
class StepSpec:
    name: str
    project: str | None  # None: the pipeline's own project, then the library
    module: str
    rev: str | None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, DatasetRef | OutputRef] = field(default_factory=dict)
    register: str | None = None
    timeout_s: float | None = None
    require_valid: bool = False  # refuse dataset inputs that failed their rules
    gpus: int = 0  # GPUs the step needs; it waits in the queue until they are free
    memory_mb: int | None = None  # the step is killed when its processes hold more
    retries: int = 0  # times a failed step is started again automatically
    publish: dict[str, str] = field(default_factory=dict)  # output -> dataset made from it


def parse_ref(text: Any, where: str) -> DatasetRef | OutputRef:
    if isinstance(text, str):
        if m := DATASET_REF.match(text):
            return DatasetRef(m[1], int(m[2]) if m[2] and m[2].isdigit() else m[2])
        if m := OUTPUT_REF.match(text):
            return OutputRef(m[1], m[2])
    raise InvalidInput(
        f"{where}: {text!r} is not an input reference; use 'dataset:NAME', 'dataset:NAME@VERSION', "
        "'dataset:NAME@TAG' or 'STEP.OUTPUT'"
    )


def parse_step(data: Any, index: int) -> StepSpec:
    where = f"step {index + 1}"
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: expected an object with name, module, params and inputs")
    fields = {
        "name",
        "module",
        "params",
        "inputs",
        "register",
        "timeout_s",
        "require_valid",
        "gpus",
        "memory_mb",
        "retries",
        "publish",
    }
    unknown = set(data) - fields
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise InvalidInput(
            f"{where}: step name {name!r} must be lower-case letters, digits, - or _"
        )
    where = f"step '{name}'"
    m = MODULE_REF.match(data.get("module") or "")
    if not m:
        raise InvalidInput(f"{where}: module {data.get('module')!r} must be [PROJECT/]MODULE[@REV]")
    params, inputs = data.get("params") or {}, data.get("inputs") or {}
    if not isinstance(params, dict) or not isinstance(inputs, dict):
        raise InvalidInput(f"{where}: params and inputs must be objects")
    timeout = data.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise InvalidInput(f"{where}: timeout_s must be a positive number of seconds")
    gpus = data.get("gpus", 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 0 <= gpus <= 64:
        raise InvalidInput(f"{where}: gpus must be a whole number of GPUs (0 for none)")
    memory_mb = data.get("memory_mb")
    if memory_mb is not None and not _whole(memory_mb, 16, 2**24):
        raise InvalidInput(f"{where}: memory_mb must be a whole number of MiB, at least 16")
    retries = data.get("retries", 0)
    if not _whole(retries, 0, MAX_RETRIES):
        raise InvalidInput(f"{where}: retries must be a whole number from 0 to {MAX_RETRIES}")
    if not isinstance(data.get("require_valid", False), bool):
        raise InvalidInput(f"{where}: require_valid must be true or false")
    refs = {k: parse_ref(v, f"{where}, input '{k}'") for k, v in inputs.items()}
    return StepSpec(
        name, m[1], m[2], m[3], params, refs, data.get("register"), timeout,
        require_valid=data.get("require_valid", False), gpus=gpus, memory_mb=memory_mb,
        retries=retries, publish=parse_publish(data.get("publish"), where),
    )  # fmt: skip


def parse_publish(value: Any, where: str) -> dict[str, str]:
    """`{OUTPUT: DATASET}`: the outputs to publish as versions of the named datasets."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f'{where}: publish must be an object like {{"train": "dataset-name"}}')
    for output, dataset in value.items():
        if not DATASET_NAME.match(dataset) or ".." in dataset:
            raise InvalidInput(
                f"{where}: publish: {dataset!r} (for output '{output}') is not a valid dataset "
                "name: use 1-63 lowercase letters, digits, '_', '.' or '-'"
            )
    if len(set(value.values())) < len(value):
        raise InvalidInput(f"{where}: publish: each output needs a dataset of its own")
    return dict(value)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_pipeline(data: Any) -> list[StepSpec]:
    """Structural checks of a spec; returns its steps in an order where inputs come first."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise InvalidInput("a pipeline needs a non-empty list 'steps'")
    if unknown := set(data) - {"steps", "seed", "description", "cache", "priority", "promote"}:
        raise InvalidInput(f"unknown pipeline field(s) {', '.join(sorted(unknown))}")
    seed = data.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32
    ):
        raise InvalidInput("'seed' must be an integer from 0 to 2**32 - 1")
    if not _whole(data.get("priority", 0), -MAX_PRIORITY, MAX_PRIORITY):
        raise InvalidInput(
            f"'priority' must be a whole number from -{MAX_PRIORITY} to {MAX_PRIORITY}"
        )
    if not isinstance(data.get("cache", True), bool):
        raise InvalidInput("'cache' must be true or false")
    steps = [parse_step(s, i) for i, s in enumerate(data["steps"])]
    _check_promote(data.get("promote"), steps)
    names = [s.name for s in steps]
    if dupes := {n for n in names if names.count(n) > 1}:
        raise InvalidInput(f"step names must be unique; repeated: {', '.join(sorted(dupes))}")
    return topological(steps)


def _check_promote(alias: Any, steps: list[StepSpec]) -> None:
    """`"promote": ALIAS`: point ALIAS at every model the run registers if its gates pass
    (else a maintainer approves or rejects; reef/runtime/approvals.py)."""
    if alias is None:
        return
    if not isinstance(alias, str) or not STEP_NAME.match(alias):
        raise InvalidInput("'promote' must be an alias name such as 'production'")
    if not any(s.register for s in steps):
        raise InvalidInput("'promote' needs a step that registers a model ('register': NAME)")


def topological(steps: list[StepSpec]) -> list[StepSpec]:
    """Order steps so each comes after the steps it reads from; refuse unknown steps and cycles."""
    by_name = {s.name: s for s in steps}
    for s in steps:
        for key, ref in s.inputs.items():
            if isinstance(ref, OutputRef) and ref.step not in by_name:
                raise InvalidInput(f"step '{s.name}', input '{key}': no step named '{ref.step}'")
    done: list[StepSpec] = []
    visiting: set[str] = set()

    def visit(s: StepSpec, path: list[str]) -> None:
        if s in done:
            return
        if s.name in visiting:
            raise InvalidInput(f"the pipeline has a cycle: {' -> '.join([*path, s.name])}")
        visiting.add(s.name)
        for ref in s.inputs.values():
            if isinstance(ref, OutputRef):
                visit(by_name[ref.step], [*path, s.name])
        visiting.discard(s.name)
        done.append(s)

    for s in steps:
        visit(s, [])
    return done


def upstream(step_inputs: dict[str, str]) -> set[str]:
    """Names of the steps a pinned step reads from (its inputs as stored on the run)."""
    return {v.split(".", 1)[0] for v in step_inputs.values() if not v.startswith("dataset:")}
