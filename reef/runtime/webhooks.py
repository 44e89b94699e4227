"""Outgoing webhooks: a project's events POSTed as JSON to the URLs its maintainers set, signed
with HMAC-SHA256, retried with backoff, each delivery logged.

`notify(...)` is where reef tells people something happened: it writes the audit entry (what
an inbox reads) and queues a delivery for each of the project's webhooks that wants that
event. A thread of `reef serve` sends what is due. The receiver checks
`X-Reef-Signature: sha256=HEX`, the HMAC-SHA256 of the raw body with the webhook's secret.
Redirects are not followed: a delivery goes to the URL the owner set and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from reef.errors import InvalidInput
from reef.store.db import now
from reef.store.people import Principal
from reef.store.webhooks import Webhooks

if TYPE_CHECKING:
    from reef.hub import Stores

log = logging.getLogger("reef.webhooks")
EVENTS = (
    "pipeline.paused",
    "run.failed_after_trigger",
    "run.finished_after_trigger",
    "trigger.failed",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "model.promote",
    "ping",
)
MAX_ATTEMPTS = 5
RETRY_BASE_S = 1.0  # the n-th retry waits RETRY_BASE_S * 2**(n-1)
SEND_TIMEOUT_S = 10.0
TICK_S = 0.5


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url: '{url}' is not an http(s) URL with a host")
    return url.strip()


def check_events(events: list[str]) -> list[str]:
    if not events or (unknown := sorted(set(events) - set(EVENTS))):
        wanted = f"unknown event(s) {', '.join(unknown)}; " if events else ""
        raise InvalidInput(f"events: {wanted}choose from {', '.join(EVENTS)}")
    return sorted(set(events))


INBOX_TEXT = {
    "pipeline.paused": "{target} paused itself: {reason}",
    "run.failed_after_trigger": "{target}, started by a trigger, failed",
    "run.finished_after_trigger": "{target}, started by a trigger, finished",
    "trigger.failed": "{target}: a trigger started no run: {error}",  # e.g. the GPU-hour quota
    "approval.requested": "{target} failed its gates and waits for your approval",
    "approval.approved": "{target} was approved and promoted",
    "approval.rejected": "{target} was rejected",
    "model.promote": "{target} was promoted",
}


class WebhookService:
    def __init__(self, stores: Stores, clock: Callable[[], datetime] = now) -> None:
        self.stores = stores
        self.store = Webhooks(stores.db)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, actor: str, action: str, target: str, project: str, **detail: Any) -> None:
        """Audit `action`, tell the people it concerns in their inbox, and queue it for the
        project's webhooks that want it."""
        self.stores.audit.record(actor, action, target, project, **detail)
        try:
            self._to_inbox(actor, action, target, project, detail)
            self.emit(project, action, {"actor": actor, "target": target, **detail})
        except Exception:  # a notification must never break what it reports on
            log.exception("notifying %s failed", action)

    def _to_inbox(
        self, actor: str, action: str, target: str, project: str, detail: dict[str, Any]
    ) -> None:
        """Run outcomes go to the run's creator; pauses, approvals and promotions to the
        project's maintainers and owners."""
        if action not in INBOX_TEXT:
            return
        if action.startswith("run."):
            users = [str(detail["owner"])] if detail.get("owner") else []
        else:
            members = self.stores.projects.members(project)
            users = [m["user"] for m in members if m["role"] in ("maintainer", "owner")]
        kind, _, name = target.partition(" ")
        text = INBOX_TEXT[action].format(target=target, **{"reason": "", **detail})
        self.stores.inbox.notify(users, action, project, (kind, name.split(" v")[0]), actor, text)

    def emit(self, project: str, event: str, data: dict[str, Any]) -> list[int]:
        p = self.stores.projects.get(project)
        payload = {"event": event, "project": project, "at": self.clock(), "data": data}
        hooks = self.store.listening(p.id, event)
        return [self.store.enqueue(h["id"], event, payload) for h in hooks]

    # managing (API and page) ---------------------------------------------------------------
    def add(self, project: str, who: Principal, url: str, events: list[str], secret: str) -> dict:
        p = self.stores.projects.get(project)
        url, events = check_url(url), check_events(events)
        secret = secret or secrets.token_hex(24)
        hook_id = self.store.add(p.id, url, events, secret, who.name)
        self.stores.audit.record(who.name, "webhook.create", f"webhook {hook_id}", project,
                              url=url, events=events)  # fmt: skip
        return self.store.get(p.id, hook_id)  # the secret is shown this once

    def listing(self, project: str) -> list[dict[str, Any]]:
        p = self.stores.projects.get(project)
        return [public(h) for h in self.store.of_project(p.id)]

    def set_enabled(self, project: str, hook_id: int, enabled: bool, who: Principal) -> dict:
        p = self.stores.projects.get(project)
        self.store.get(p.id, hook_id)
        self.store.set_enabled(hook_id, enabled)
        action = "webhook.enable" if enabled else "webhook.disable"
        self.stores.audit.record(who.name, action, f"webhook {hook_id}", project)
        return public(self.store.get(p.id, hook_id))

    def delete(self, project: str, hook_id: int, who: Principal) -> None:
        p = self.stores.projects.get(project)
        self.store.get(p.id, hook_id)
        self.store.delete(hook_id)
        self.stores.audit.record(who.name, "webhook.delete", f"webhook {hook_id}", project)

    def deliveries(self, project: str, hook_id: int) -> list[dict[str, Any]]:
        self.store.get(self.stores.projects.get(project).id, hook_id)
        return self.store.deliveries(hook_id)

    def send_again(self, project: str, hook_id: int, delivery_id: int, who: Principal) -> int:
        """Queue a new delivery of an earlier one's event and payload."""
        self.store.get(self.stores.projects.get(project).id, hook_id)
        old = self.store.delivery(hook_id, delivery_id)
        new = self.store.enqueue(hook_id, old["event"], old["payload"])
        self.stores.audit.record(who.name, "webhook.redeliver", f"webhook {hook_id}", project,
                              delivery=delivery_id, new=new)  # fmt: skip
        return new

    def ping(self, project: str, hook_id: int, who: Principal) -> int:
        self.store.get(self.stores.projects.get(project).id, hook_id)
        payload = {"event": "ping", "project": project, "at": self.clock(),
                   "data": {"actor": who.name}}  # fmt: skip
        return self.store.enqueue(hook_id, "ping", payload)

    # sending -------------------------------------------------------------------------------
    def send_due(self) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        due = self.store.due(self.clock())
        if not due:  # a client loads the CA bundle: tens of ms of CPU, twice a second
            return 0
        hooks: dict[int, dict[str, Any]] = {}
        with httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False, trust_env=False) as c:
            for d in due:
                hook = hooks.get(d["webhook_id"]) or self.store.by_id(d["webhook_id"])
                hooks[d["webhook_id"]] = hook
                self._attempt(c, hook, d)
        return len(due)

    def _attempt(self, client: httpx.Client, hook: dict[str, Any], d: dict[str, Any]) -> None:
        body = json.dumps({**d["payload"], "delivery": d["id"]}, default=str).encode()
        headers = {"Content-Type": "application/json", "X-Reef-Event": d["event"],
                   "X-Reef-Delivery": str(d["id"]),
                   "X-Reef-Signature": signature(hook["secret"], body)}  # fmt: skip
        status, error = None, None
        try:
            status = client.post(hook["url"], content=body, headers=headers).status_code
            if not 200 <= status < 300:
                error = f"the receiver answered HTTP {status}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        attempts = d["attempts"] + 1
        if error is None:
            self.store.attempted(d["id"], "delivered", status, None, None)
        elif attempts >= MAX_ATTEMPTS:
            self.store.attempted(d["id"], "failed", status, error, None)
        else:
            wait = timedelta(seconds=RETRY_BASE_S * 2 ** (attempts - 1))
            self.store.attempted(d["id"], "pending", status, error, self.clock() + wait)

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reef-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SEND_TIMEOUT_S + 5)

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.send_due()
            except Exception:
                log.exception("sending webhooks failed")


def public(hook: dict[str, Any]) -> dict[str, Any]:
    """A webhook without its secret (shown only when it is created)."""
    return {k: v for k, v in hook.items() if k != "secret"}
