"""MLflow's model registry calls (`registered-models/*`, `model-versions/*`, aliases) over
reef's registry. Registering a logged model exports it to ONNX in a child process (with the
parity check), so it becomes a reef model version that serves, gates and monitors like any
other; an MLflow alias is a reef alias, moved through the same gates as a promotion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import litestar
from litestar import Request
from litestar.params import JSONBody

from reef.errors import InvalidInput, NotFound, PermissionDenied
from reef.hub import Hub
from reef.runtime.promotion import promote
from reef.server.mlflow_api import mlget, mlpost, mlroute
from reef.server.mlflow_models import model_for
from reef.server.mlflow_wire import check_role, field, run_for, tag_list
from reef.server.routes import HubDep
from reef.store.people import Principal, check_name

Body = JSONBody[Any]
EXPORT_TIMEOUT_S = 600


def _registered(hub: Hub, who: Principal, name: str, role: str) -> dict[str, Any]:
    """A registered model `who` may use: by role in its project once it has one, else only
    its creator (and admins) see it."""
    model = hub.mlflow_registry.get(name)
    hidden = f"Registered Model with name={name} not found"
    if model["project_id"] is not None:
        check_role(hub, who, hub.project_name(model["project_id"]), role, hidden)
    elif model["created_by"] != who.name and not who.is_admin:
        raise NotFound(hidden)
    return model


def version_json(hub: Hub, v: dict[str, Any]) -> dict[str, Any]:
    aliases = _aliases(hub, v["name"])
    return {
        "name": v["name"],
        "version": str(v["version"]),
        "creation_timestamp": v["created_ms"],
        "last_updated_timestamp": v["created_ms"],
        "user_id": v["created_by"],
        "current_stage": "None",
        "description": "",
        "source": v["source"],
        "run_id": str(v["run_id"]) if v["run_id"] else "",
        "status": "READY",
        "status_message": v["status_message"],
        "tags": [{"key": k, "value": x} for k, x in v["tags"].items()],
        "aliases": [a for a, n in aliases.items() if n == v["version"]],
        **({"model_id": v["model_id"]} if v["model_id"] else {}),
    }


def _aliases(hub: Hub, name: str) -> dict[str, int]:
    """MLflow alias -> MLflow version, read from the reef model's aliases."""
    model = hub.mlflow_registry.get(name)
    if model["project_id"] is None:
        return {}
    try:
        model_id = hub.models.model_id(model["project_id"], name)
    except NotFound:
        return {}
    out = {}
    for alias, reef_version in hub.models.aliases(model_id).items():
        if (version := hub.mlflow_registry.by_reef_version(name, reef_version)) is not None:
            out[alias] = version
    return out


def registered_json(hub: Hub, m: dict[str, Any]) -> dict[str, Any]:
    versions = hub.mlflow_registry.versions(m["name"])
    return {
        "name": m["name"],
        "creation_timestamp": m["created_ms"],
        "last_updated_timestamp": m["updated_ms"],
        "user_id": m["created_by"],
        "description": m["description"],
        "latest_versions": [version_json(hub, versions[-1])] if versions else [],
        "tags": [{"key": k, "value": v} for k, v in m["tags"].items()],
        "aliases": [{"alias": a, "version": str(v)} for a, v in _aliases(hub, m["name"]).items()],
    }


@mlpost("/registered-models/create")
def create_registered_model(request: Request, hub: HubDep, data: Body = None) -> dict:
    name = field(data, "name")
    check_name("model", name)
    hub.mlflow_registry.create(
        name, request.user.name, str(data.get("description") or ""), tag_list(data.get("tags"))
    )
    return {"registered_model": registered_json(hub, hub.mlflow_registry.get(name))}


@mlget("/registered-models/get")
def get_registered_model(request: Request, hub: HubDep) -> dict:
    name = field(dict(request.query_params.items()), "name")
    return {
        "registered_model": registered_json(hub, _registered(hub, request.user, name, "reporter"))
    }


@mlget("/registered-models/search")
def search_registered_models(request: Request, hub: HubDep) -> dict:
    found = []
    for name in hub.mlflow_registry.names():
        try:
            found.append(registered_json(hub, _registered(hub, request.user, name, "reporter")))
        except (NotFound, PermissionDenied):
            continue
    return {"registered_models": found}


@mlroute(litestar.delete, "/registered-models/delete")
def delete_registered_model(request: Request, hub: HubDep, data: Body = None) -> dict:
    name = field(data, "name")
    _registered(hub, request.user, name, "maintainer")
    hub.mlflow_registry.delete(name)
    return {}


@mlpost("/model-versions/create")
def create_model_version(request: Request, hub: HubDep, data: Body = None) -> dict:
    """Export the logged model and register it; a model reef cannot export is kept with
    the reason as its status message (tag `reef.servable` = false)."""
    name = field(data, "name")
    registered = _registered(hub, request.user, name, "developer")
    source = field(data, "source")
    model_id = data.get("model_id") or _model_id_in(source)
    if not model_id:
        raise InvalidInput(f"reef registers logged models (models:/<model_id>); got {source!r}")
    logged = model_for(hub, request.user, model_id, "developer")
    project_id = int(logged["project_id"])
    if registered["project_id"] not in (None, project_id):
        raise InvalidInput(
            f"registered model {name!r} lives in project "
            f"'{hub.project_name(registered['project_id'])}'; this logged model is in another"
        )
    run_id = int(logged["run_id"]) if logged["run_id"] else None
    if run_id is not None:
        run_for(hub, request.user, run_id)
    reef_version, message = _export_and_register(hub, request.user, name, logged, run_id)
    tags = {**tag_list(data.get("tags")), "reef.servable": "true" if reef_version else "false"}
    version = hub.mlflow_registry.add_version(
        name, reef_version, source, run_id, model_id, message, tags, request.user.name
    )
    if registered["project_id"] is None:
        hub.mlflow_registry.update(name, project_id=project_id)
    return {"model_version": version_json(hub, hub.mlflow_registry.version(name, version))}


def _model_id_in(source: str) -> str | None:
    if source.startswith("models:/m-"):
        return source.split("/", 1)[1].split("/")[0]
    return None


def _export_and_register(
    hub: Hub, who: Principal, name: str, logged: dict[str, Any], run_id: int | None
) -> tuple[int | None, str]:
    with tempfile.TemporaryDirectory(prefix="reef-mlflow-") as tmp:
        base = Path(tmp)
        src, dest = base / "inputs" / "model", base / "outputs" / "onnx"
        for folder in (base / "work", base / "outputs"):
            folder.mkdir(parents=True)
        _materialize(hub, logged, run_id, src)
        done = _run_export(hub, base, src, dest)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        outcome = json.loads(lines[-1]) if lines else {"ok": False, "reason": done.stderr[-500:]}
        if not outcome.get("ok"):
            return None, str(outcome.get("reason") or "not servable")
        version = hub.model_service.register_dir(
            int(logged["project_id"]),
            name,
            dest,
            run_id=run_id or 0,
            step_name="mlflow",
            metrics=hub.runs.latest_metrics(run_id) if run_id else {},
            lineage={"run_id": run_id, "mlflow_model_id": logged["model_id"], "modules": []},
            author=who.name,
        )
        return version, ""


def _run_export(hub: Hub, base: Path, src: Path, dest: Path) -> subprocess.CompletedProcess:
    """The export, in the same sandbox as a step: it reads the model's files and writes
    only its outputs (loading a pickle runs the pickle's code)."""
    sandbox = hub.orchestrator.sandbox
    if refusal := sandbox.refusal():
        raise InvalidInput(f"cannot export the model here: {refusal}")
    policy, env = sandbox.policy(base, [str(src)], hub.settings.port)
    cmd = [*sandbox.prefix(policy), sys.executable, "-m", "reef.runtime.mlflow_export"]
    return subprocess.run(
        [*cmd, str(src), str(dest)],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        env={**os.environ, **env},
        cwd=base / "work",
    )


def _materialize(hub: Hub, logged: dict[str, Any], run_id: int | None, dest: Path) -> None:
    prefix = f"models/{logged['model_id']}"
    files = hub.mlflow.artifact_files(run_id or 0, prefix)
    if not files:
        raise InvalidInput(f"logged model {logged['model_id']} has no files uploaded")
    for rel, digest in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        hub.artifacts.copy_to(digest, target)
    if not (dest / "MLmodel").is_file():
        shutil.rmtree(dest)
        raise InvalidInput(f"logged model {logged['model_id']} has no MLmodel file")


@mlget("/model-versions/get")
def get_model_version(request: Request, hub: HubDep) -> dict:
    q = dict(request.query_params.items())
    name = field(q, "name")
    _registered(hub, request.user, name, "reporter")
    version = hub.mlflow_registry.version(name, field(q, "version", int))
    return {"model_version": version_json(hub, version)}


@mlget("/model-versions/search")
def search_model_versions(request: Request, hub: HubDep) -> dict:
    wanted = request.query_params.get("filter") or ""
    found = []
    for name in hub.mlflow_registry.names():
        if wanted and f"'{name}'" not in wanted:
            continue
        try:
            _registered(hub, request.user, name, "reporter")
        except NotFound:
            continue
        found += [version_json(hub, v) for v in hub.mlflow_registry.versions(name)]
    return {"model_versions": found}


@mlpost("/registered-models/alias")
def set_alias(request: Request, hub: HubDep, data: Body = None) -> dict:
    name, alias = field(data, "name"), field(data, "alias")
    model = _registered(hub, request.user, name, "maintainer")
    version = hub.mlflow_registry.version(name, field(data, "version", int))
    if version["reef_version"] is None:
        raise InvalidInput(f"version {version['version']} is {version['status_message']}")
    project = hub.project_name(model["project_id"])
    promote(hub.model_service, request.user, project, name, version["reef_version"], alias)
    return {}


@mlget("/registered-models/alias")
def get_by_alias(request: Request, hub: HubDep) -> dict:
    q = dict(request.query_params.items())
    name, alias = field(q, "name"), field(q, "alias")
    _registered(hub, request.user, name, "reporter")
    version = _aliases(hub, name).get(alias)
    if version is None:
        raise NotFound(f"Registered model alias {alias} not found.")
    return {"model_version": version_json(hub, hub.mlflow_registry.version(name, version))}


ROUTES = [
    create_registered_model,
    get_registered_model,
    search_registered_models,
    delete_registered_model,
    create_model_version,
    get_model_version,
    search_model_versions,
    set_alias,
    get_by_alias,
]
