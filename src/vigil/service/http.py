"""ASGI middleware: request bodies read only when the endpoint asks, bounded and inflated as they stream; an access log.

Senders gzip large inventory batches. The body is not read here: the endpoint reads it after it has
checked the caller (``api/deps.py``), so a caller without a token never gets a byte of it buffered or
inflated. The stream handed to the endpoint is inflated chunk by chunk in a worker thread (the event
loop keeps answering ``/healthz``), under a limit that depends on who is asking and where: small
before the caller is known, large only on the ingest routes. Bodies beyond the small limit hold one
of a few slots; when all are taken the request gets 503 with ``Retry-After`` at once rather than a
queue, because senders retry (the sensor spools) and a queue would hold their bodies in memory.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from vigil.service.api.errors import ApiError

log = logging.getLogger("vigil.http")

INGEST_PREFIX = "/api/v1/ingest/"
# An admission webhook's decision batch (up to 500 decisions with their violations) is a sender's batch too.
DECISIONS_SUFFIX = "/admission/decisions"


@dataclass(frozen=True)
class BodyLimits:
    """Bytes a request body may have after gzip decoding, by who sends it and where (docs/security.md)."""

    ingest_bytes: int  # the ingest routes, once the caller is authenticated
    other_bytes: int  # every other route, once the caller is authenticated; beyond it a body is "large"
    preauth_bytes: int  # any route, before the caller is known (the console's login form)
    large_bodies: int  # large bodies being read at once
    retry_after_seconds: int = 1

    def limit(self, scope: dict[str, Any]) -> tuple[int, str]:
        """The limit in force for this request now, and the words naming it in a 413."""
        state = scope.get("state")
        if not (isinstance(state, dict) and state.get("principal") is not None):
            return self.preauth_bytes, ", the limit before the caller is authenticated"
        if scope["path"].startswith(INGEST_PREFIX) or scope["path"].endswith(DECISIONS_SUFFIX):
            return self.ingest_bytes, ""
        return self.other_bytes, ", the limit outside the ingest routes"


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


def _too_large(what: str, limit: int, why: str) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} exceeds {limit} bytes{why}")


class _BoundedBody:
    """The ``receive`` an endpoint reads its body through: counted, inflated off the loop, bounded."""

    def __init__(self, scope, receive, limits: BodyLimits, gzipped: bool, slots: _Slots) -> None:
        self.scope = scope
        self.receive = receive
        self.limits = limits
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        self.slots = slots
        self.holds_slot = False
        self.wire = 0
        self.size = 0
        self.done = False

    async def __call__(self) -> dict[str, Any]:
        if self.done:
            return await self.receive()
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        more = bool(message.get("more_body"))
        limit, why = self.limits.limit(self.scope)
        self.wire += len(chunk)
        if self.wire > limit:
            raise _too_large("request body", limit, why)
        if self.inflater is not None:
            chunk = await self._inflate(chunk, limit, why, last=not more)
        else:
            self.size += len(chunk)
        if self.size > self.limits.other_bytes and not self.holds_slot:
            self._take_slot()
        self.done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def _inflate(self, chunk: bytes, limit: int, why: str, last: bool) -> bytes:
        inflater = self.inflater
        assert inflater is not None
        allowance = limit - self.size
        try:
            # Never more than the allowance plus one byte: a bomb stops at the limit, not at its end.
            out = await run_in_threadpool(inflater.decompress, chunk, allowance + 1) if chunk else b""
        except zlib.error as exc:
            raise ApiError(400, "bad_request", f"body is not valid gzip: {exc}") from None
        self.size += len(out)
        if len(out) > allowance or inflater.unconsumed_tail:
            raise _too_large("decompressed body", limit, why)
        if last and not inflater.eof:
            raise ApiError(400, "bad_request", "body is not valid gzip: stream is truncated")
        return out

    def _take_slot(self) -> None:
        if not self.slots.take():
            raise ApiError(
                503,
                "busy",
                f"{self.limits.large_bodies} request bodies over {self.limits.other_bytes} bytes are being read "
                "already; retry later",
                headers={"Retry-After": str(self.limits.retry_after_seconds)},
            )
        self.holds_slot = True

    def release(self) -> None:
        if self.holds_slot:
            self.slots.give()
            self.holds_slot = False


class _Slots:
    """A counter, not a lock: only the event loop touches it, and a full house answers 503 rather than waits."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.size:
            return False
        self.taken += 1
        return True

    def give(self) -> None:
        self.taken -= 1


class RequestBodyMiddleware:
    def __init__(self, app, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits
        self.slots = _Slots(limits.large_bodies)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding not in ("identity", "gzip"):
            return await _send_error(
                send, 415, "unsupported_media_type", f"Content-Encoding {encoding!r} is not accepted; use gzip or none"
            )
        if encoding == "gzip":
            # The endpoint sees the inflated stream, whose length is unknown until it is read.
            kept = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
            scope = dict(scope, headers=kept)
        if not isinstance(scope.get("state"), dict):
            # The dict the endpoint's ``request.state`` writes the principal into, and the limits read it from.
            scope = dict(scope, state={})
        body = _BoundedBody(scope, receive, self.limits, encoding == "gzip", self.slots)
        try:
            return await self.app(scope, body, send)
        finally:
            body.release()


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
