"""Approval requests for promotions a pipeline asked for (reef/runtime/approvals.py): the API
under `/api/projects/{p}/models/{m}/approvals` and the model page's approve/reject form."""

from __future__ import annotations

import msgspec
from litestar import Request
from litestar.response import Redirect

from reef.errors import InvalidInput
from reef.runtime import approvals
from reef.server.model_answers import ApprovalRequest
from reef.server.routes import Form, FromPath, HubDep, JSONBody, get, post
from reef.server.shaped import shaped

BASE = "/api/projects/{project:str}/models/{model:str}/approvals"


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    """`approve`: true promotes the version (its failed gates overridden), false rejects it;
    `comment`: why (required, kept on the request)."""

    approve: bool
    comment: str


@get(BASE, access="reporter")
def approvals_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str]
) -> list[ApprovalRequest]:
    """The model's approval requests, newest first."""
    return shaped(list[ApprovalRequest], approvals.listing(hub, project, model))


@post(BASE + "/{approval_id:int}", access="maintainer", status_code=200)
def decide_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    approval_id: FromPath[int],
    data: JSONBody[Decision],
) -> ApprovalRequest:
    """The request as decided."""
    decided = approvals.decide(
        hub, request.user, project, model, approval_id, data.approve, data.comment
    )
    return shaped(ApprovalRequest, decided)


@post("/projects/{project:str}/models/{model:str}/approvals/{approval_id:int}", access="maintainer")
def decide_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    approval_id: FromPath[int],
    data: Form,
) -> Redirect:
    decision = data.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision: approve or reject")
    comment = data.get("comment", "")
    approvals.decide(hub, request.user, project, model, approval_id, decision == "approve", comment)
    return Redirect(f"/projects/{project}/models/{model}#approvals")


ROUTES = [approvals_api, decide_api, decide_page]
