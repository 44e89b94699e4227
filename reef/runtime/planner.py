"""Planning a run: validate a pipeline spec completely and pin it (module commits, resolved
parameters, dataset versions) before anything is queued."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

import psutil
from packaging.requirements import InvalidRequirement, Requirement

from reef import column_flow
from reef.column_flow import UNKNOWN_TYPE, Columns
from reef.errors import InvalidInput, NotFound
from reef.manifest import COLUMN_TYPES, Manifest
from reef.pipeline import DatasetRef, OutputRef, StepSpec, parse_pipeline
from reef.runtime.environment import fingerprint
from reef.runtime.publish import check_publish
from reef.runtime.target_check import check_targets
from reef.store.people import Principal
from reef.store.projects import LIBRARY
from reef.store.rules import require_valid
from reef.store.runs import StepPlan

if TYPE_CHECKING:
    from reef.hub import Stores
    from reef.runtime.gpus import GpuPool

NUMERIC = ("int", "uint", "float", "double", "decimal", "halffloat")
KnownColumns = dict[str, dict[str, Columns | None]]  # step -> dataset output -> its columns
PINNED = ("params", "inputs", "timeout_s", "gpus", "memory_mb", "retries")  # kept in the spec


@dataclass(frozen=True, kw_only=True)
class PlannedStep(StepPlan):
    """A step's plan (what `steps` stores) and what the run's pinned spec keeps beside it."""

    register: str | None = None  # the model name its `model` output is registered as
    publish: dict[str, str] = field(default_factory=dict)  # output -> dataset made from it

    def pinned_spec(self) -> dict:
        """The step as pinned on its run: still a valid spec, so a re-run reads exactly this."""
        keep = {k: getattr(self, k) for k in PINNED}
        extra = {"register": self.register, "publish": self.publish}
        pinned = {"name": self.name, **keep, **extra}
        return {**{k: v for k, v in pinned.items() if v is not None},
                "module": f"{self.module}@{self.commit_sha}"}  # fmt: skip


class Planner:
    def __init__(self, stores: Stores, gpu_pool: GpuPool) -> None:
        self.stores, self.gpu_pool = stores, gpu_pool
        self._fingerprint: str | None = None

    def plan(self, project: str, spec: dict, who: Principal) -> list[PlannedStep]:
        """Validate a spec and pin it: module commits, parameters, dataset versions."""
        steps = parse_pipeline(spec)
        outputs: dict[str, dict[str, str]] = {}
        keys: dict[str, str] = {}
        known: KnownColumns = {}
        planned: list[PlannedStep] = []
        manifests: dict = {}
        for s in steps:
            module_project = self._module_project(project, s, who)
            step = self._plan_step(project, module_project, s, outputs, known)
            keys[s.name] = self.cache_key(project, step, keys)
            planned.append(replace(step, cache_key=keys[s.name]))
            outputs[s.name] = step.outputs
            manifests[s.name] = self.stores.modules.manifest(
                module_project, s.module_name, step.commit_sha
            )
        check_targets(self.stores, project, planned, manifests)  # a target that fits the task
        return planned

    def cache_key(self, project: str, step: StepPlan, upstream_keys: dict[str, str]) -> str:
        """Same module commit, parameters, inputs and environment -> same key. An input from
        another step is identified by that step's own key, so keys chain through the DAG."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint()
        inputs = {
            k: v
            if v.startswith("dataset:")
            else f"{upstream_keys[v.split('.', 1)[0]]}.{v.split('.', 1)[1]}"
            for k, v in step.inputs.items()
        }
        text = json.dumps(
            {
                "project": project,
                "commit": step.commit_sha,
                "module": step.module,
                "params": step.params,
                "inputs": inputs,
                "env": self._fingerprint,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _module_project(self, project: str, s: StepSpec, who: Principal) -> str:
        if s.project:
            self.stores.projects.require(s.project, who, "reporter")
            return s.project
        return project if self.stores.modules.exists(project, s.module_name) else LIBRARY

    def _plan_step(
        self,
        project: str,
        module_project: str,
        s: StepSpec,
        outputs: dict[str, dict[str, str]],
        known: KnownColumns,
    ) -> PlannedStep:
        where, module = f"step '{s.name}'", s.module_name
        if not self.stores.modules.exists(module_project, module):
            raise InvalidInput(f"{where}: no module '{module}' in project '{module_project}'")
        try:
            sha = self.stores.modules.resolve(module_project, module, s.rev)
        except NotFound as e:
            raise InvalidInput(f"{where}: module {module}: {e.message}") from e
        manifest = self.stores.modules.manifest(module_project, module, sha)
        try:
            params = manifest.resolve_params(s.params)
        except InvalidInput as e:
            raise type(e)(f"{where}: {e.message}") from e
        inputs = self._pin_inputs(project, s, manifest.inputs, outputs)
        check_publish(where, s.publish, manifest.outputs)
        if s.require_valid:  # dataset inputs must have passed their rules
            require_valid(self.stores.catalog, self.stores.projects.get(project).id, where, inputs)
        self._check_columns(project, where, manifest, params, inputs, known)
        known[s.name] = self._output_columns(project, manifest, params, inputs, known)
        return PlannedStep(
            name=s.name,
            module=f"{module_project}/{module}",
            commit_sha=sha,
            params=params,
            inputs=inputs,
            outputs=dict(manifest.outputs),
            timeout_s=s.timeout_s or self.stores.settings.step_timeout,
            gpus=self._gpus(where, s.gpus),
            memory_mb=self._memory(where, s.memory_mb),
            retries=s.retries,
            register=s.register,
            publish=s.publish,
        )

    def _memory(self, where: str, mb: int | None) -> int | None:
        have = psutil.virtual_memory().total // 2**20
        remote = self.stores.settings.queue != "sqlite"  # a worker may have more than this box
        if mb is not None and mb > have and not remote:
            raise InvalidInput(f"{where}: needs {mb} MiB of memory; this machine has {have} MiB")
        return mb

    def _gpus(self, where: str, count: int) -> int:
        """At most what this server lends; with a Redis queue a remote worker may lend more
        (the pipeline format caps it at 64), and the step waits in the queue for one."""
        have = len(self.gpu_pool.devices)
        if count > have and self.stores.settings.queue == "sqlite":
            raise InvalidInput(f"{where}: needs {count} GPU(s); this server has {have}")
        return count

    def _pin_inputs(
        self, project: str, s: StepSpec, wanted: dict[str, str], outputs: dict[str, dict[str, str]]
    ) -> dict[str, str]:
        where = f"step '{s.name}'"
        if extra := set(s.inputs) - set(wanted):
            raise InvalidInput(
                f"{where}: module has no input(s) {', '.join(sorted(extra))} "
                f"(its inputs: {', '.join(wanted) or 'none'})"
            )
        if missing := set(wanted) - set(s.inputs):
            raise InvalidInput(f"{where}: input(s) {', '.join(sorted(missing))} not connected")
        pinned = {}
        for key, ref in s.refs.items():
            kind = self._ref_kind(ref, outputs, f"{where}, input '{key}'")
            if kind != wanted[key]:
                raise InvalidInput(
                    f"{where}, input '{key}': expects a {wanted[key]}, but {ref} is a {kind}"
                )
            try:
                pinned[key] = self._pin_ref(project, ref)
            except NotFound as e:
                raise InvalidInput(f"{where}, input '{key}': {e.message}") from e
        return pinned

    def _ref_kind(self, ref: Any, outputs: dict, where: str) -> str:
        if isinstance(ref, DatasetRef):
            return "dataset"
        assert isinstance(ref, OutputRef)
        if ref.output not in outputs[ref.step]:
            raise InvalidInput(
                f"{where}: step '{ref.step}' has no output '{ref.output}' "
                f"(its outputs: {', '.join(outputs[ref.step]) or 'none'})"
            )
        return outputs[ref.step][ref.output]

    def _pin_ref(self, project: str, ref: Any) -> str:
        if isinstance(ref, OutputRef):
            return str(ref)
        info = self.stores.datasets.info(project, ref.name, ref.version)
        return f"dataset:{ref.name}@{info.version}"

    def _check_columns(
        self,
        project: str,
        where: str,
        manifest: Manifest,
        params: dict,
        inputs: dict[str, str],
        known: KnownColumns,
    ) -> None:
        """Column parameters name columns of their dataset input, of the type they declare:
        a dataset's schema, or what an upstream step's manifest says it outputs
        (reef.column_flow). Inputs whose columns cannot be known are not checked."""
        for name, param in manifest.params.items():
            ref = inputs.get(param.input or "")
            if param.type not in COLUMN_TYPES or not ref:
                continue
            columns = self._columns_of(project, ref, known)
            if columns is None:
                continue
            source = _describe(ref)
            values = params[name] if param.type == "columns" else [params[name]]
            for value in values:
                if value not in columns:
                    raise InvalidInput(
                        f"{where}: parameter '{name}': no column '{value}' in {source}"
                        f" (columns: {', '.join(columns)})"
                    )
                if columns[value] != UNKNOWN_TYPE and not column_fits(columns[value], param.dtype):
                    raise InvalidInput(
                        f"{where}: parameter '{name}': column '{value}' is {columns[value]}, "
                        f"not {param.dtype}"
                    )

    def _columns_of(self, project: str, ref: str, known: KnownColumns) -> Columns | None:
        """The columns (name -> type) a pinned input will hold; None when unknown."""
        if ref.startswith("dataset:"):
            dataset, version = ref.removeprefix("dataset:").split("@")
            return dict(self.stores.datasets.info(project, dataset, int(version)).columns)
        step, _, output = ref.partition(".")
        return known.get(step, {}).get(output)

    def _output_columns(
        self,
        project: str,
        manifest: Manifest,
        params: dict,
        inputs: dict[str, str],
        known: KnownColumns,
    ) -> dict[str, Columns | None]:
        """What each dataset output of a planned step will hold, from its manifest (an
        output the manifest does not describe is unknown: None)."""
        if not manifest.columns:
            return {}
        given = {k: self._columns_of(project, ref, known) for k, ref in inputs.items()}
        return {
            name: column_flow.derive(spec, params, given) if spec else None
            for name, kind in manifest.outputs.items()
            if kind == "dataset"
            for spec in [manifest.columns.get(name)]
        }


def _describe(ref: str) -> str:
    return ref.removeprefix("dataset:") if ref.startswith("dataset:") else f"the output {ref}"


def column_fits(arrow_type: str, dtype: str | None) -> bool:
    numeric = arrow_type.startswith(NUMERIC)
    if dtype == "numeric":
        return numeric
    if dtype == "string":
        return arrow_type in ("string", "large_string")
    return True


def missing_requirements(requirements: list[str]) -> list[str]:
    """The pip requirements this Python environment does not satisfy (nothing is installed)."""
    missing = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            missing.append(f"{text} (not a valid requirement)")
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{text} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    return missing
