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
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from reef.errors import InvalidInput

STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MODULE_REF = re.compile(r"^(?:([a-z0-9][a-z0-9_.-]*)/)?([a-z0-9][a-z0-9_.-]*)(?:@([\w./-]+))?$")
DATASET_REF = re.compile(r"^dataset:([a-z0-9][a-z0-9_.-]*)(?:@(\d+|[A-Za-z][\w.-]*))?$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
OUTPUT_REF = re.compile(r"^([a-z0-9][a-z0-9_-]*)\.([a-z0-9_]+)$")
MAX_RETRIES = 10
MAX_PRIORITY = 100  # runs with a higher priority start their steps first
MAX_GPUS = 64


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


class StepSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A step as its pipeline spec says it; msgspec checks each field (the constraints below),
    `parse_pipeline` what spans fields and steps (references, the DAG)."""

    name: Annotated[str, Meta(pattern=STEP_NAME.pattern)]
    module: Annotated[str, Meta(pattern=MODULE_REF.pattern)]  # [PROJECT/]MODULE[@REV]
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}  # name -> 'dataset:NAME[@V|@TAG]' or 'STEP.OUTPUT'
    register: str | None = None  # the model name its `model` output is registered as
    timeout_s: Annotated[float, Meta(gt=0)] | None = None
    require_valid: bool = False  # refuse dataset inputs that failed their rules
    gpus: Annotated[int, Meta(ge=0, le=MAX_GPUS)] = 0  # it waits in the queue until free
    memory_mb: Annotated[int, Meta(ge=16, le=2**24)] | None = None  # killed above this
    retries: Annotated[int, Meta(ge=0, le=MAX_RETRIES)] = 0  # automatic restarts when it fails
    publish: dict[str, str] = {}  # output -> dataset made from it

    @property
    def project(self) -> str | None:
        """The module's project; None: the pipeline's own project, then the library."""
        return _module_ref(self.module)[1]

    @property
    def module_name(self) -> str:
        return str(_module_ref(self.module)[2])

    @property
    def rev(self) -> str | None:
        return _module_ref(self.module)[3]

    @property
    def refs(self) -> dict[str, DatasetRef | OutputRef]:
        """Its inputs, parsed (InvalidInput names the first one that is no reference)."""
        where = f"step '{self.name}'"
        return {k: parse_ref(v, f"{where}, input '{k}'") for k, v in self.inputs.items()}


class PipelineSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole spec (JSON or YAML), as the pipeline editor and the API take it."""

    steps: Annotated[list[StepSpec], Meta(min_length=1)]
    seed: Annotated[int, Meta(ge=0, lt=2**32)] | None = None  # pinned on each run
    description: Any = None
    cache: bool = True  # reuse the outputs of an identical earlier step
    priority: Annotated[int, Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY)] = 0
    promote: Annotated[str, Meta(pattern=STEP_NAME.pattern)] | None = None  # an alias


HINTS = {  # what a field must be, in the words the pipeline docs use
    "name": "step name {value} must be lower-case letters, digits, - or _",
    "module": "module {value} must be [PROJECT/]MODULE[@REV]",
    "params": "params and inputs must be objects",
    "inputs": "params and inputs must be objects",
    "timeout_s": "timeout_s must be a positive number of seconds",
    "gpus": "gpus must be a whole number of GPUs (0 for none)",
    "memory_mb": "memory_mb must be a whole number of MiB, at least 16",
    "retries": f"retries must be a whole number from 0 to {MAX_RETRIES}",
    "require_valid": "require_valid must be true or false",
    "register": "register must be a model name",
    "publish": 'publish must be an object like {{"train": "dataset-name"}}',
    "steps": "a pipeline needs a non-empty list 'steps'",
    "seed": "'seed' must be an integer from 0 to 2**32 - 1",
    "priority": f"'priority' must be a whole number from -{MAX_PRIORITY} to {MAX_PRIORITY}",
    "cache": "'cache' must be true or false",
    "promote": "'promote' must be an alias name such as 'production'",
}
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(.+)`")
_MISSING = re.compile(r"Object missing required field `(.+)`")


def _module_ref(text: str) -> re.Match[str]:
    m = MODULE_REF.match(text)
    assert m is not None, text  # the field's pattern was checked when the spec was decoded
    return m


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


def decode(data: Any) -> PipelineSpec:
    """The spec as typed structs; InvalidInput says which step and field is wrong and why."""
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        steps = [_without_nulls(s) for s in data["steps"]]
        data = {**data, "steps": steps}
    try:
        return msgspec.convert(data, PipelineSpec)
    except msgspec.ValidationError as e:
        raise explain(str(e), data) from e


def _without_nulls(step: Any) -> Any:
    """`"params": null` and the like mean the default, as they always have."""
    return {k: v for k, v in step.items() if v is not None} if isinstance(step, dict) else step


def explain(error: str, data: Any) -> InvalidInput:
    """msgspec's `Expected int <= 64 - at $.steps[0].gpus` in the pipeline docs' words:
    `step 'train': gpus must be a whole number of GPUs (0 for none) (expected int <= 64)`."""
    m = _AT.match(error)
    assert m is not None
    msg, path = m["msg"], re.findall(r"\.(\w+)|\[(\d+|\.\.\.)\]", m["path"] or "")
    keys = [key or index for key, index in path]
    where, value, field = "", None, keys[0] if keys else "steps"
    if keys[:1] == ["steps"] and len(keys) > 1:
        index = int(keys[1])
        step = data["steps"][index]
        name = step.get("name") if isinstance(step, dict) else None
        named = isinstance(name, str) and STEP_NAME.match(name)
        where = f"step '{name}'" if named else f"step {index + 1}"
        field = keys[2] if len(keys) > 2 else ""
        value = repr(step.get(field)) if isinstance(step, dict) else None
    if unknown := _UNKNOWN.match(msg):
        kind = "field(s)" if where else "pipeline field(s)"
        return InvalidInput(f"{where + ': ' if where else ''}unknown {kind} {unknown[1]}")
    if missing := _MISSING.match(msg):
        return InvalidInput(f"{where}: '{missing[1]}' is missing" if where else HINTS["steps"])
    if where and not field:
        hint = "expected an object with name, module, params and inputs"
    else:
        hint = HINTS.get(field, f"{field}: invalid").format(value=value)
    if "matching regex" in msg:  # the hint says what the pattern allows, in words
        return InvalidInput(f"{where + ': ' if where else ''}{hint}")
    detail = msg[0].lower() + msg[1:]
    return InvalidInput(f"{where + ': ' if where else ''}{hint} ({detail})")


def parse_pipeline(data: Any) -> list[StepSpec]:
    """A spec's steps, checked completely, in an order where inputs come first."""
    spec = decode(data)
    for s in spec.steps:
        s.refs  # noqa: B018 -- raises InvalidInput for a bad reference
        check_publish(s)
    if spec.promote is not None and not any(s.register for s in spec.steps):
        raise InvalidInput("'promote' needs a step that registers a model ('register': NAME)")
    names = [s.name for s in spec.steps]
    if dupes := {n for n in names if names.count(n) > 1}:
        raise InvalidInput(f"step names must be unique; repeated: {', '.join(sorted(dupes))}")
    return topological(spec.steps)


def check_publish(s: StepSpec) -> None:
    """`{OUTPUT: DATASET}`: the outputs to publish as versions of the named datasets."""
    where = f"step '{s.name}'"
    for output, dataset in s.publish.items():
        if not DATASET_NAME.match(dataset) or ".." in dataset:
            raise InvalidInput(
                f"{where}: publish: {dataset!r} (for output '{output}') is not a valid dataset "
                "name: use 1-63 lowercase letters, digits, '_', '.' or '-'"
            )
    if len(set(s.publish.values())) < len(s.publish):
        raise InvalidInput(f"{where}: publish: each output needs a dataset of its own")


def topological(steps: list[StepSpec]) -> list[StepSpec]:
    """Order steps so each comes after the steps it reads from; refuse unknown steps and cycles."""
    by_name = {s.name: s for s in steps}
    for s in steps:
        for key, ref in s.refs.items():
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
        for ref in s.refs.values():
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
