"""Outgoing webhooks of a project over HTTP: the API under `/api/projects/{p}/webhooks` and the
page `/projects/{p}/webhooks` (list, add, deliveries with "send again"). Maintainers only: a
webhook sends the project's events to a URL outside reef."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request
from litestar.response import Redirect, Template

from reef.errors import InvalidInput
from reef.runtime.webhooks import EVENTS
from reef.server.routes import Form, FromPath, HubDep, JSONBody, delete, get, patch, post

BASE = "/api/projects/{project:str}/webhooks"
PAGE = "/projects/{project:str}/webhooks"


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    """`secret`: the HMAC-SHA256 key (reef makes one when empty; shown only in this reply)."""

    url: str
    events: list[str]
    secret: str = ""


class WebhookChange(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool


Events = Annotated[
    list[str],
    msgspec.Meta(description="the events it is sent", examples=[["model.promote", "ping"]]),
]


class Webhook(msgspec.Struct):
    """A webhook of the project (its secret is shown only when it is added)."""

    id: int
    project_id: int
    url: str
    events: Events
    enabled: bool
    created_by: str
    created_at: datetime


class NewWebhook(msgspec.Struct):
    """The webhook added, with its secret: shown this once."""

    id: int
    project_id: int
    url: str
    events: Events
    secret: Annotated[
        str, msgspec.Meta(description="the HMAC-SHA256 key of the X-Reef-Signature header")
    ]
    enabled: bool
    created_by: str
    created_at: datetime


class Delivery(msgspec.Struct):
    """One event sent (or to be sent) to a webhook, newest first."""

    id: int
    webhook_id: int
    event: Annotated[str, msgspec.Meta(examples=["ping"])]
    payload: Annotated[dict[str, Any], msgspec.Meta(description="the JSON body sent")]
    status: Annotated[str, msgspec.Meta(examples=["pending", "delivered", "failed"])]
    attempts: int
    next_at: Annotated[datetime | None, msgspec.Meta(description="when it is tried next")]
    response_status: Annotated[int | None, msgspec.Meta(description="the receiver's HTTP status")]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryId(msgspec.Struct):
    """The delivery queued (it is sent in the background)."""

    id: int


@get(BASE, access="maintainer")
def webhooks_api(hub: HubDep, project: FromPath[str]) -> list[Webhook]:
    return [Webhook(**h) for h in hub.webhooks.listing(project)]


@post(BASE, access="maintainer", status_code=201)
def add_webhook_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[WebhookIn]
) -> NewWebhook:
    return NewWebhook(**hub.webhooks.add(project, request.user, data.url, data.events, data.secret))


@patch(BASE + "/{hook_id:int}", access="maintainer")
def change_webhook_api(
    request: Request, hub: HubDep, project: FromPath[str], hook_id: FromPath[int],
    data: JSONBody[WebhookChange],
) -> Webhook:  # fmt: skip
    return Webhook(**hub.webhooks.set_enabled(project, hook_id, data.enabled, request.user))


@delete(BASE + "/{hook_id:int}", access="maintainer")
def delete_webhook_api(
    request: Request, hub: HubDep, project: FromPath[str], hook_id: FromPath[int]
) -> None:
    hub.webhooks.delete(project, hook_id, request.user)


@get(BASE + "/{hook_id:int}/deliveries", access="maintainer")
def deliveries_api(hub: HubDep, project: FromPath[str], hook_id: FromPath[int]) -> list[Delivery]:
    """The webhook's last 50 deliveries."""
    return [Delivery(**d) for d in hub.webhooks.deliveries(project, hook_id)]


@post(BASE + "/{hook_id:int}/deliveries/{delivery_id:int}/again", access="maintainer",
      status_code=201)  # fmt: skip
def send_again_api(
    request: Request, hub: HubDep, project: FromPath[str], hook_id: FromPath[int],
    delivery_id: FromPath[int],
) -> DeliveryId:  # fmt: skip
    """Send a delivery's payload again, as a new delivery."""
    return DeliveryId(hub.webhooks.send_again(project, hook_id, delivery_id, request.user))


@post(BASE + "/{hook_id:int}/ping", access="maintainer", status_code=201)
def ping_api(
    request: Request, hub: HubDep, project: FromPath[str], hook_id: FromPath[int]
) -> DeliveryId:
    """Send a `ping` event to the webhook."""
    return DeliveryId(hub.webhooks.ping(project, hook_id, request.user))


# pages -------------------------------------------------------------------------------
@get(PAGE, access="maintainer")
def webhooks_page(hub: HubDep, project: FromPath[str]) -> Template:
    hooks = [
        {**h, "deliveries": hub.webhooks.deliveries(project, h["id"])[:10]}
        for h in hub.webhooks.listing(project)
    ]
    context = {"project": hub.projects.get(project), "hooks": hooks, "events": EVENTS,
               "created": None}  # fmt: skip
    return Template("webhooks.html", context=context)


@post(PAGE, access="maintainer")
async def add_webhook_page(request: Request, project: FromPath[str]) -> Template:
    """Add a webhook from the form (events are repeated checkboxes); shows its secret once."""
    form = await request.form()
    hub = request.app.state.hub
    hook = await anyio.to_thread.run_sync(
        lambda: hub.webhooks.add(project, request.user, form.get("url", ""),
                                 form.getall("events"), form.get("secret", ""))
    )  # fmt: skip
    hooks = await anyio.to_thread.run_sync(hub.webhooks.listing, project)
    context = {"project": hub.projects.get(project), "events": EVENTS, "created": hook,
               "hooks": [{**h, "deliveries": []} for h in hooks]}  # fmt: skip
    return Template("webhooks.html", context=context, status_code=201)


@post(PAGE + "/{hook_id:int}", access="maintainer")
def webhook_page_action(
    request: Request, hub: HubDep, project: FromPath[str], hook_id: FromPath[int], data: Form
) -> Redirect:
    """The buttons of a webhook: enable, disable, delete, ping, send a delivery again."""
    action, who = data.get("action", ""), request.user
    if action in ("enable", "disable"):
        hub.webhooks.set_enabled(project, hook_id, action == "enable", who)
    elif action == "delete":
        hub.webhooks.delete(project, hook_id, who)
    elif action == "ping":
        hub.webhooks.ping(project, hook_id, who)
    elif action.startswith("again:") and action[6:].isdigit():
        hub.webhooks.send_again(project, hook_id, int(action[6:]), who)
    else:
        raise InvalidInput("action: one of enable, disable, delete, ping, again:DELIVERY")
    return Redirect(f"/projects/{project}/webhooks")


ROUTES = [
    webhooks_api,
    add_webhook_api,
    change_webhook_api,
    delete_webhook_api,
    deliveries_api,
    send_again_api,
    ping_api,
    webhooks_page,
    add_webhook_page,
    webhook_page_action,
]
