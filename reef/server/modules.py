"""AI modules: the catalog, a module's page, new modules from the template, and running one
module on a dataset by filling the form generated from its manifest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import UNSET, Meta, UnsetType

from reef import scaffold
from reef.errors import InvalidInput, NotFound
from reef.hub import Hub
from reef.manifest import Manifest
from reef.server.routes import Form, FromPath, FromQuery, HubDep, JSONBody, get, post
from reef.server.shaped import shaped
from reef.store.modules import CommitInfo
from reef.store.people import Principal
from reef.store.projects import LIBRARY, Project


def module_card(hub: Hub, project: str, name: str) -> dict[str, Any]:
    manifest = hub.modules.manifest(project, name)
    last = hub.modules.log(project, name, limit=1)[0]
    return {
        "project": project,
        "name": name,
        "kind": manifest.kind,
        "description": manifest.description,
        "commit": last.sha,
        "updated": last.timestamp,
        "params": list(manifest.params),
    }


def catalog(hub: Hub, project: str, q: str = "", kind: str = "") -> list[dict[str, Any]]:
    """Modules usable in `project` (its own, then the library), filtered by text and kind."""
    sources = [project] if project == LIBRARY else [project, LIBRARY]
    cards = [module_card(hub, p, m) for p in sources for m in hub.modules.list_modules(p)]
    words = q.lower().split()
    return [
        c
        for c in cards
        if (not kind or c["kind"] == kind)
        and all(w in f"{c['name']} {c['description']}".lower() for w in words)
    ]


def module_context(
    hub: Hub, who: Principal, project: str, name: str, rev: str | None = None
) -> dict[str, Any]:
    p = hub.projects.get(project)
    if not hub.modules.exists(project, name):
        raise NotFound(f"module '{name}' not found in project '{project}'")
    sha = hub.modules.resolve(project, name, rev)
    manifest = hub.modules.manifest(project, name, sha)
    return {
        "project": p,
        "module": name,
        "commit": sha,
        "manifest": manifest.to_dict(),
        "versions": hub.modules.log(project, name),
        "tags": hub.modules.tags(project, name),
        "readme": (readme := _readme(hub, project, name, sha)),
        "readme_html": render_markdown(readme),
        "used_in": used_in(hub, who, f"{project}/{name}"),
    }


def render_markdown(text: str) -> str:
    """A README as HTML. Raw HTML in it is escaped, and markdown-it refuses javascript: links."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _readme(hub: Hub, project: str, name: str, sha: str) -> str:
    try:
        return hub.modules.read_file(project, name, sha, "README.md").decode(errors="replace")
    except (NotFound, KeyError, FileNotFoundError):
        return ""


def used_in(hub: Hub, who: Principal, module: str, limit: int = 50) -> list[dict]:
    """Recent runs that ran `module`, in projects `who` may read."""
    return hub.run_views.module_runs(module, who, limit)


class NewModule(msgspec.Struct, forbid_unknown_fields=True):
    """A module made from the template of its kind (a first commit to push onto)."""

    name: Annotated[str, msgspec.Meta(examples=["clean-prices"])]
    kind: Literal["data-processor", "model", "evaluator", "visualization"] = "data-processor"
    description: str = ""


def new_module(hub: Hub, who: Principal, project: str, data: Mapping[str, str]) -> str:
    """`data`: name, kind and description (a NewModule's fields or the page form's)."""
    name = str(data.get("name") or "")
    if hub.modules.exists(project, name):
        raise InvalidInput(f"module '{name}' already exists in project '{project}'")
    files = scaffold.files(
        name, str(data.get("kind") or "data-processor"), str(data.get("description") or "")
    )
    sha = hub.modules.commit_files(
        project, name, files, "new module from the template", f"{who.name} <{who.name}@reef.local>"
    )
    hub.audit.record(who.name, "module.create", f"module {name}", project, sha=sha)
    return name


# code: browse and compare versions ----------------------------------------------------
MAX_SHOWN_BYTES = 512_000


class ModuleCard(msgspec.Struct, forbid_unknown_fields=True):
    """A module of the catalog: where it lives, what it does, its latest commit."""

    project: Annotated[str, Meta(description="the project it belongs to (or library)")]
    name: Annotated[str, Meta(examples=["split"])]
    kind: Annotated[str, Meta(examples=["data-processor"])]
    description: str
    commit: Annotated[str, Meta(description="the sha of its latest commit")]
    updated: datetime
    params: Annotated[list[str], Meta(description="its parameters' names")]


class ModuleTag(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(examples=["v1"])]
    sha: str


class ModuleRun(msgspec.Struct, forbid_unknown_fields=True):
    """A recent run that ran the module (in a project you may read)."""

    id: int
    project: str
    status: str
    created_by: str
    created_at: datetime
    commit_sha: Annotated[str, Meta(description="the module commit the run used")]


class ModuleDetail(msgspec.Struct, forbid_unknown_fields=True):
    """A module at a revision: its manifest (reef.toml), history, tags, README and the runs
    that used it."""

    project: Project
    module: str
    commit: Annotated[str, Meta(description="the revision shown, as a sha")]
    manifest: Annotated[
        dict[str, Any], Meta(description="reef.toml: kind, description, inputs, outputs, params")
    ]
    versions: Annotated[list[CommitInfo], Meta(description="commits, newest first")]
    tags: list[ModuleTag]
    readme: str
    readme_html: str
    used_in: list[ModuleRun]


class TreeEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    path: str
    type: Annotated[str, Meta(description="tree (a folder) or blob (a file)")]
    size: Annotated[int | None, Meta(description="bytes; null for a folder")]


class CodeView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A folder of a revision (`entries`) or a file (`text`, null when binary; `size`)."""

    project: Project
    module: str
    commit: str
    path: str
    parents: Annotated[
        list[tuple[str, str]], Meta(description="(name, path) of each folder above `path`")
    ]
    entries: list[TreeEntry] | None
    text: Annotated[str | None, Meta(description=f"the first {MAX_SHOWN_BYTES} bytes")]
    size: Annotated[int | UnsetType, Meta(description="a file's size in bytes")] = UNSET


class FileDiff(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    status: Annotated[str, Meta(description="added, deleted or modified")]
    patch: Annotated[str, Meta(description="the file's unified diff")]


class ModuleDiff(msgspec.Struct, forbid_unknown_fields=True):
    """What changed from one revision to another."""

    from_: Annotated[str, Meta(description="the older revision's sha")] = msgspec.field(name="from")
    to: Annotated[str, Meta(description="the newer revision's sha")]
    files: list[FileDiff]


def code_context(hub: Hub, project: str, name: str, rev: str | None, path: str) -> dict:
    """A folder listing, or a file's text, at a revision."""
    sha = hub.modules.resolve(project, name, rev)
    path = path.strip("/")
    context = {
        "project": hub.projects.get(project),
        "module": name,
        "commit": sha,
        "path": path,
        "parents": _parents(path),
        "entries": None,
        "text": None,
    }
    try:
        context["entries"] = hub.modules.tree(project, name, sha, path)
    except (NotFound, InvalidInput):
        data = hub.modules.read_file(project, name, sha, path)
        context["text"] = (
            data[:MAX_SHOWN_BYTES].decode(errors="replace") if b"\0" not in data[:8000] else None
        )
        context["size"] = len(data)
    return context


def _parents(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def diff_context(hub: Hub, project: str, name: str, old: str | None, new: str | None) -> dict:
    log = hub.modules.log(project, name)
    new_sha = hub.modules.resolve(project, name, new)
    old_sha = (
        hub.modules.resolve(project, name, old)
        if old
        else (log[1].sha if len(log) > 1 else new_sha)
    )
    return {
        "project": hub.projects.get(project),
        "module": name,
        "versions": log,
        "from": old_sha,
        "to": new_sha,
        "tags": hub.modules.tags(project, name),
        "files": hub.modules.diff(project, name, old_sha, new_sha),
    }


# running one module ------------------------------------------------------------------
def module_ref(hub: Hub, who: Principal, text: str) -> tuple[str, str, Manifest]:
    """`PROJECT/MODULE` -> (project, module, manifest at head), checking read access."""
    project, _, name = (text or "").partition("/")
    if not name:
        raise InvalidInput("choose a module as PROJECT/MODULE")
    hub.projects.require(project, who, "reporter")
    if not hub.modules.exists(project, name):
        raise NotFound(f"module '{name}' not found in project '{project}'")
    return project, name, hub.modules.manifest(project, name)


def run_form_context(
    hub: Hub, who: Principal, project: str, module: str, chosen: dict[str, str]
) -> dict[str, Any]:
    """What the form shows: dataset choices per input, and columns for column parameters."""
    module_project, name, manifest = module_ref(hub, who, module)
    p = hub.projects.get(project)
    datasets = hub.catalog.datasets(p.id)
    inputs: dict[str, dict[str, Any]] = {}
    for key, kind in manifest.inputs.items():
        options = (
            [f"dataset:{d['name']}@{d['latest']}" for d in datasets] if kind == "dataset" else []
        )
        inputs[key] = {
            "kind": kind,
            "options": options,
            "selected": chosen.get(key) or (options[0] if options else ""),
        }
    columns = {key: _columns(hub, project, i["selected"]) for key, i in inputs.items()}
    return {
        "project": p,
        "module": f"{module_project}/{name}",
        "manifest": manifest,
        "inputs": inputs,
        "columns": columns,
        "given": {},
    }


def _columns(hub: Hub, project: str, ref: str) -> list[str]:
    if not ref.startswith("dataset:"):
        return []
    dataset, _, version = ref.removeprefix("dataset:").partition("@")
    return [c for c, _ in hub.datasets.info(project, dataset, int(version)).columns]


def start_module_run(hub: Hub, who: Principal, project: str, data: dict) -> int:
    """One module as a one-step run: {module, inputs: {name: ref}, params, register?}."""
    _, name, _ = module_ref(hub, who, str(data.get("module") or ""))
    step = {
        "name": name.replace(".", "-")[:63],
        "module": data["module"],
        "inputs": data.get("inputs") or {},
        "params": data.get("params") or {},
    }
    if data.get("register"):
        step["register"] = data["register"]
    return hub.orchestrator.start(project, None, {"steps": [step]}, who)


def form_to_run(form: dict[str, str]) -> dict[str, Any]:
    """Form fields `module`, `input.NAME`, `param.NAME`, `register` -> a module run request."""
    out: dict[str, Any] = {"module": form.get("module", ""), "inputs": {}, "params": {}}
    for key, value in form.items():
        kind, _, name = key.partition(".")
        if kind == "input":
            out["inputs"][name] = value
        elif kind == "param":
            out["params"][name] = value
    if form.get("register"):
        out["register"] = form["register"]
    return out


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/modules", access="reporter")
def list_modules_api(
    hub: HubDep, project: FromPath[str], q: FromQuery[str] = "", kind: FromQuery[str] = ""
) -> list[ModuleCard]:
    hub.projects.get(project)
    cards = [c for c in catalog(hub, project, q, kind) if c["project"] == project]
    return shaped(list[ModuleCard], cards)


@post("/api/projects/{project:str}/modules", access="developer", status_code=201)
def new_module_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[NewModule]
) -> ModuleDetail:
    name = new_module(hub, request.user, project, msgspec.structs.asdict(data))
    return shaped(ModuleDetail, module_context(hub, request.user, project, name))


@get("/api/projects/{project:str}/modules/{module:str}", access="reporter")
def module_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    rev: FromQuery[str | None] = None,
) -> ModuleDetail:
    return shaped(ModuleDetail, module_context(hub, request.user, project, module, rev))


@get("/api/projects/{project:str}/modules/{module:str}/tree", access="reporter")
def code_api(
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    rev: FromQuery[str | None] = None,
    path: FromQuery[str] = "",
) -> CodeView:
    """A folder listing, or a file's text, at revision `rev` (default: head)."""
    return shaped(CodeView, code_context(hub, project, module, rev, path))


@get("/api/projects/{project:str}/modules/{module:str}/diff", access="reporter")
def diff_api(
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    old: FromQuery[str | None] = None,
    new: FromQuery[str | None] = None,
) -> ModuleDiff:
    """Changes from revision `old` (default: the one before `new`) to `new` (default: head)."""
    ctx = diff_context(hub, project, module, old, new)
    return shaped(ModuleDiff, {k: ctx[k] for k in ("from", "to", "files")})


# pages -------------------------------------------------------------------------------
@get("/projects/{project:str}/modules/{module:str}/tree", access="reporter")
def code_page(
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    rev: FromQuery[str | None] = None,
    path: FromQuery[str] = "",
) -> Template:
    return Template("module_code.html", context=code_context(hub, project, module, rev, path))


@get("/projects/{project:str}/modules/{module:str}/diff", access="reporter")
def diff_page(
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    old: FromQuery[str | None] = None,
    new: FromQuery[str | None] = None,
) -> Template:
    return Template("module_diff.html", context=diff_context(hub, project, module, old, new))


@get("/projects/{project:str}/modules", access="reporter")
def catalog_page(
    request: HTMXRequest,
    hub: HubDep,
    project: FromPath[str],
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
) -> Template:
    cards = catalog(hub, project, q, kind)
    template = "_module_cards.html" if request.htmx else "catalog.html"
    return Template(
        template,
        context={
            "project": hub.projects.get(project),
            "cards": cards,
            "q": q,
            "kind": kind,
            "role": hub.projects.role_of(project, request.user),
        },
    )


@post("/projects/{project:str}/modules", access="developer")
def new_module_page(request: Request, hub: HubDep, project: FromPath[str], data: Form) -> Redirect:
    name = new_module(hub, request.user, project, data)
    return Redirect(f"/projects/{project}/modules/{name}")


@get("/projects/{project:str}/modules/{module:str}", access="reporter")
def module_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    module: FromPath[str],
    rev: FromQuery[str | None] = None,
) -> Template:
    return Template("module.html", context=module_context(hub, request.user, project, module, rev))


@get("/projects/{project:str}/run", access="developer")
def run_module_page(
    request: HTMXRequest, hub: HubDep, project: FromPath[str], module: FromQuery[str]
) -> Template:
    chosen = {
        k.removeprefix("input."): v
        for k, v in request.query_params.items()
        if k.startswith("input.")
    }
    ctx = run_form_context(hub, request.user, project, module, chosen)
    template = "_run_form.html" if request.htmx else "run_module.html"
    return Template(template, context=ctx)


@post("/projects/{project:str}/run", access="developer")
def run_module_submit(
    request: Request, hub: HubDep, project: FromPath[str], data: Form
) -> Redirect:
    run_id = start_module_run(hub, request.user, project, form_to_run(data))
    return Redirect(f"/projects/{project}/runs/{run_id}")


ROUTES = [
    code_api,
    diff_api,
    code_page,
    diff_page,
    list_modules_api,
    new_module_api,
    module_api,
    catalog_page,
    new_module_page,
    module_page,
    run_module_page,
    run_module_submit,
]
