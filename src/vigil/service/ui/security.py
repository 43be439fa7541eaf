"""Browser-facing protections: security headers on console responses, and the CSRF check."""

from __future__ import annotations

import hmac

# Scripts and styles only from our own static files: no inline script, no inline style,
# so an injected attribute or tag cannot run even if escaping were ever missed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# The API and its generated docs keep their own headers.
API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")


def is_console_path(path: str) -> bool:
    return not path.startswith(API_PREFIXES)


class SecurityHeadersMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_console_path(scope["path"]):
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                if scope["path"] != "/static" and not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def csrf_ok(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), str(presented).encode())
