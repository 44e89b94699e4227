"""Headers every response carries: a Content-Security-Policy that runs only reef's own
scripts (no inline script, no eval, no other origin), no framing, no MIME sniffing, and a
Referrer-Policy. A response that sets its own CSP (a module's artifact, sandboxed) keeps it.

The pages follow the policy: their JavaScript lives in `reef/static/reef-*.js`, templates
carry no `<script>` blocks (only JSON data blocks), no `on*=` and no `hx-on` attributes, and
htmx runs with `allowEval: false`.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # htmx and uPlot set element styles
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
}


class SecurityHeaders:
    """ASGI wrapper adding `HEADERS` to each HTTP response that does not set them itself."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in HEADERS.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, send_with_headers)
