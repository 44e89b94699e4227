"""Promotion as a pipeline step: a run of a pipeline with `"promote": ALIAS` points ALIAS at
each model version it registered when the gates pass; when they fail, an approval request
waits for a maintainer, who approves (the promotion happens then) or rejects it, each with a
comment that stays on the version. Every outcome is audited (`approval.requested`,
`approval.approved`, `approval.rejected`, and `model.promote` for the promotion itself)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from reef.errors import Conflict, InvalidInput
from reef.runtime import promotion
from reef.store.approvals import Approvals
from reef.store.people import Principal
from reef.store.runs import Run

if TYPE_CHECKING:
    from reef.hub import Hub, Stores
    from reef.runtime.registry import ModelService
    from reef.runtime.webhooks import WebhookService
    from reef.store.db import Database

log = logging.getLogger("reef.approvals")


def after_run(
    hub: Stores,
    models: ModelService,
    webhooks: WebhookService,
    run: Run,
    registered: list[tuple[str, int]],
) -> None:
    """Promote what the run registered, or ask for approval; never fails the run."""
    alias = run.spec.get("promote")
    if not alias:
        return
    row = hub.people.user(run.created_by)
    who = Principal(row["id"], row["name"], row["is_admin"], via="run")
    project = hub.project_name(run.project_id)
    for model, version in registered:
        try:
            _promote_or_ask(hub.db, models, webhooks, who, project, run, (model, version), alias)
        except Exception:  # the run's models are registered: a failed promotion is logged
            log.exception("promoting %s v%s after run %s failed", model, version, run.id)


def _promote_or_ask(
    db: Database, models: ModelService, webhooks: WebhookService, who: Principal, project: str,
    run: Run, registered: tuple[str, int], alias: str,
) -> None:  # fmt: skip
    model, version = registered
    try:
        promotion.promote(models, who, project, model, version, alias)
    except promotion.GateRefused as refused:
        model_id = models.model_id(project, model)
        request = Approvals(db).request(
            run.project_id, model_id, version, alias, run.id, refused.checks
        )
        failed = [c["detail"] for c in refused.checks if not c["ok"]]
        webhooks.notify("reef", "approval.requested", f"model {model} v{version}", project,
                         approval=request, alias=alias, run=run.id, failed=failed)  # fmt: skip


def listing(hub: Hub, project: str, model: str) -> list[dict[str, Any]]:
    return Approvals(hub.db).of_model(hub.model_service.model_id(project, model))


def decide(
    hub: Hub, who: Principal, project: str, model: str, approval_id: int, approve: bool,
    comment: str,
) -> dict[str, Any]:  # fmt: skip
    """A maintainer approves (promoting the version) or rejects a pending request."""
    if not comment.strip():
        raise InvalidInput("comment: say why you approve or reject this promotion")
    store = Approvals(hub.db)
    model_id = hub.model_service.model_id(project, model)
    request = store.get(model_id, approval_id)
    if request["status"] != "pending":
        raise Conflict(f"approval request {approval_id} is already {request['status']}")
    target = f"model {model} v{request['version']}"
    if approve:  # the gates failed: the maintainer's approval is the override
        promotion.promote(
            hub.model_service, who, project, model, request["version"], request["alias"],
            reason=comment.strip(), approval=approval_id,
        )  # fmt: skip
    status = "approved" if approve else "rejected"
    if not store.decide(approval_id, status, who.name, comment.strip()):
        raise Conflict(f"approval request {approval_id} was decided meanwhile")
    hub.webhooks.notify(who.name, f"approval.{status}", target, project, approval=approval_id,
                     alias=request["alias"], comment=comment.strip())  # fmt: skip
    return store.get(model_id, approval_id)
