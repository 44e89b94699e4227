"""Promotion and rollback: move an alias to a version through its gates, audited, then swap
the served version in without dropping requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reef.errors import Conflict, PermissionDenied
from reef.runtime import gates, traffic
from reef.store.people import Principal

if TYPE_CHECKING:
    from reef.runtime.registry import ModelService


class GateRefused(Conflict):
    """The version failed checks that gate the alias; `checks` holds every result."""

    def __init__(self, message: str, checks: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.checks = checks


def promote(
    service: ModelService,
    who: Principal,
    project: str,
    name: str,
    version: int,
    alias: str = "production",
    *,
    override: bool = False,
    reason: str = "",
    approval: int | None = None,
) -> dict[str, Any]:
    """Point `alias` at `version` if it passes the gates; an owner may override failures, and
    a maintainer's approval of a pipeline's request (`approval`, its id) lets it through."""
    hub, model_id = service.stores, service.model_id(project, name)
    hub.models.version(model_id, version)  # 404 before any check runs
    checks = gates.evaluate(service, project, model_id, version, alias)
    failed = [c["detail"] for c in checks if not c["ok"]]
    target = f"model {name} v{version}"
    if failed and not override and approval is None:
        hub.audit.record(
            who.name, "model.promote.refused", target, project, alias=alias, failed=failed
        )
        raise GateRefused(f"promotion to '{alias}' refused: {'; '.join(failed)}", checks)
    if failed and approval is None and hub.projects.role_of(project, who) != "owner":
        raise PermissionDenied("only a project owner may override failed gates")
    service.predictor(model_id, version)  # load before the swap
    previous = hub.models.set_alias(model_id, alias, version)
    hub.models.record_promotion(
        model_id,
        alias,
        version,
        previous,
        action="promote",
        actor=who.name,
        override=bool(failed),
        checks=checks,
    )
    detail: dict[str, Any] = {"alias": alias, "previous": previous, "override": bool(failed)}
    if failed:
        detail.update(failed=failed, reason=reason, approval=approval)
    service.webhooks.notify(who.name, "model.promote", target, project, **detail)
    service.refresh(model_id)
    return {"model": name, "version": version, "checks": checks, **detail}


def rollback(
    service: ModelService, who: Principal, project: str, name: str, alias: str = "production"
) -> dict[str, Any]:
    """Point `alias` back at the version it had before its latest change (no gates: this is
    the way back). A second rollback undoes the first."""
    hub, model_id = service.stores, service.model_id(project, name)
    target = hub.models.rollback_target(model_id, alias)
    if target is None:
        raise Conflict(f"'{alias}' has no earlier version to roll back to")
    service.predictor(model_id, target)
    previous = hub.models.set_alias(model_id, alias, target)
    hub.models.record_promotion(
        model_id, alias, target, previous, action="rollback", actor=who.name
    )
    hub.audit.record(
        who.name,
        "model.rollback",
        f"model {name} v{target}",
        project,
        alias=alias,
        previous=previous,
    )
    service.refresh(model_id)
    return {"model": name, "version": target, "alias": alias, "previous": previous}


def set_traffic(
    service: ModelService, who: Principal, project: str, name: str, data: Any
) -> dict[str, Any] | None:
    """Split the default route's traffic with a candidate version, or shadow it, or stop."""
    setting = traffic.parse(data)
    model_id = service.model_id(project, name)
    if setting is not None:
        service.stores.models.version(model_id, setting["version"])
        service.predictor(model_id, setting["version"])
    service.stores.models.set_setting(model_id, "traffic", setting)
    service.stores.audit.record(
        who.name, "model.traffic", f"model {name}", project, **(setting or {"mode": "off"})
    )
    service.refresh(model_id)
    return setting
