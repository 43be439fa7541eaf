"""ASGI middleware: gzip request bodies with a size bound, and an access log with metrics.

Senders gzip large inventory batches; the body is inflated here, bounded, before
any endpoint sees it, so every endpoint takes gzip the same way.
"""

from __future__ import annotations

import logging
import time
import zlib

import orjson

log = logging.getLogger("vigil.http")


async def _send_error(send, status: int, code: str, detail: str) -> None:
    body = orjson.dumps({"error": code, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyMiddleware:
    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding not in ("identity", "gzip"):
            return await _send_error(
                send, 415, "unsupported_media_type", f"Content-Encoding {encoding!r} is not accepted; use gzip or none"
            )
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max:
                return await _send_error(send, 413, "payload_too_large", f"request body exceeds {self.max} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if encoding == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, self.max + 1)
            except zlib.error as exc:
                return await _send_error(send, 400, "bad_request", f"body is not valid gzip: {exc}")
            if len(body) > self.max or inflater.unconsumed_tail:
                return await _send_error(send, 413, "payload_too_large", f"decompressed body exceeds {self.max} bytes")
            if not inflater.eof:
                return await _send_error(send, 400, "bad_request", "body is not valid gzip: stream is truncated")
            new_headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
            new_headers.append((b"content-length", str(len(body)).encode()))
            scope = dict(scope, headers=new_headers)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class AccessLogMiddleware:
    """Logs method, route template, status and duration; never headers (they carry tokens)."""

    def __init__(self, app, metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(elapsed)
            principal = (
                getattr(scope.get("state", {}).get("principal"), "token_id", None)
                if isinstance(scope.get("state"), dict)
                else None
            )
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "token_id": principal,
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
