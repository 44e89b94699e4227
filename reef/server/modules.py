"""AI modules: the catalog of a project's git-backed modules, each with manifest and versions."""

from __future__ import annotations

from typing import Any

from litestar.response import Template

from reef.server.routes import FromPath, FromQuery, HubDep, get


def module_context(hub: HubDep, project: str, name: str, rev: str | None = None) -> dict[str, Any]:
    p = hub.projects.get(project)
    sha = hub.modules.resolve(project, name, rev)
    manifest = hub.modules.manifest(project, name, sha)
    try:
        readme = hub.modules.read_file(project, name, sha, "README.md").decode(errors="replace")
    except Exception:  # a module without README is fine
        readme = ""
    return {
        "project": p,
        "module": name,
        "commit": sha,
        "manifest": manifest.to_dict(),
        "versions": hub.modules.log(project, name),
        "readme": readme,
    }


@get("/api/projects/{project:str}/modules", access="reporter")
def list_modules_api(hub: HubDep, project: FromPath[str]) -> list[dict]:
    out = []
    for name in hub.modules.list_modules(project):
        m = hub.modules.manifest(project, name)
        out.append(
            {
                "name": name,
                "kind": m.kind,
                "description": m.description,
                "commit": hub.modules.head(project, name),
            }
        )
    return out


@get("/api/projects/{project:str}/modules/{module:str}", access="reporter")
def module_api(
    hub: HubDep, project: FromPath[str], module: FromPath[str], rev: FromQuery[str | None] = None
) -> dict:
    return module_context(hub, project, module, rev)


@get("/projects/{project:str}/modules/{module:str}", access="reporter")
def module_page(
    hub: HubDep, project: FromPath[str], module: FromPath[str], rev: FromQuery[str | None] = None
) -> Template:
    return Template("module.html", context=module_context(hub, project, module, rev))


ROUTES = [list_modules_api, module_api, module_page]
