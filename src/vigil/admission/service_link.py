"""The webhook's connection to the service (I/O): the feed it decides from, and the decisions it reports.

The feed is one long-lived NDJSON response: the service pushes changes, the webhook never polls
per request. A broken feed is reopened with backoff while the last knowledge stays in force.
Decisions are batched and sent in the background; a review never waits on the service.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from vigil.admission.knowledge import FeedContentError, Knowledge
from vigil.loopback import is_loopback_host
from vigil.wire.admission import FEED_EVENT, AdmissionDecisionBatch, AdmissionDecisionRecord
from vigil.wire.client_certificate import ClientCertificateError, read_bearer

log = logging.getLogger(__name__)

# A snapshot of a big cluster's facts is one line; anything longer is not a feed this webhook reads.
MAX_LINE_BYTES = 64 * 1024 * 1024
# The service pings every 10 s: three missed pings mean the connection is dead.
READ_TIMEOUT = 35.0
MAX_QUEUED_DECISIONS = 10_000
BATCH = 200


def check_service_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--service {url!r} must be http(s)://host[:port]")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"--service {url!r}: plain HTTP is allowed only on loopback; use https")
    return url.rstrip("/")


class Credential:
    """The admission credential, read from its file at each use so a rotated Secret is picked up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def secret(self) -> str | None:
        try:
            return read_bearer(self.path)
        except ClientCertificateError:
            return None


class ServiceLink:
    def __init__(
        self,
        url: str,
        cluster_id: str,
        credential: Credential,
        knowledge: Knowledge,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = check_service_url(url)
        self.cluster_id = cluster_id
        self.credential = credential
        self.knowledge = knowledge
        self._client = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(10.0, read=READ_TIMEOUT))
        self._queue: deque[AdmissionDecisionRecord] = deque(maxlen=MAX_QUEUED_DECISIONS)
        self.dropped = 0
        self.feed_error: str | None = "the feed has not connected yet"
        self._wake = asyncio.Event()
        self._inflight: AdmissionDecisionBatch | None = None

    def _headers(self) -> dict[str, str] | None:
        secret = self.credential.secret()
        return {"Authorization": f"Bearer {secret}"} if secret else None

    async def follow_feed(self) -> None:
        """Keep ``knowledge`` current from the service's feed, forever."""
        delay = 0.5
        path = f"{self.url}/api/v1/clusters/{self.cluster_id}/admission/feed"
        while True:
            headers = self._headers()
            if headers is None:
                self.feed_error = f"no admission credential in {self.credential.path} yet"
            else:
                try:
                    async with self._client.stream("GET", path, headers=headers) as response:
                        if response.status_code != 200:
                            body = (await response.aread())[:300].decode("utf-8", "replace")
                            self.feed_error = f"the service answered {response.status_code}: {body}"
                        else:
                            await self._read_feed(response)
                            delay = 0.5
                except (httpx.HTTPError, OSError) as exc:
                    self.feed_error = f"feed connection failed: {type(exc).__name__}: {exc}"
            log.warning("admission feed interrupted", extra={"error": self.feed_error, "retry_in": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _read_feed(self, response: httpx.Response) -> None:
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
                raise httpx.DecodingError(f"a feed line exceeds {MAX_LINE_BYTES} bytes")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._apply(line)
        self.feed_error = "the service closed the feed"

    def _apply(self, line: bytes) -> None:
        try:
            event = FEED_EVENT.validate_json(line)
            self.knowledge.apply(event)
        except (ValidationError, FeedContentError) as exc:
            # One unreadable event must not stop the feed; the knowledge it would change stays as it was.
            log.error("admission feed event refused", extra={"error": str(exc)[:500]})
            return
        self.feed_error = None

    def report(self, decision: AdmissionDecisionRecord) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(decision)
        if len(self._queue) >= BATCH:
            self._wake.set()

    async def send_decisions(self, interval: float = 1.0) -> None:
        """Send queued decisions in batches, forever; a batch the service did not take is sent again."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._wake.clear()
            while self._queue or self._inflight is not None:
                if not await self._send_batch():
                    break

    async def _send_batch(self) -> bool:
        headers = self._headers()
        if headers is None:
            return False
        if self._inflight is None:
            # The batch keeps its id until the service acknowledges it: a resend after a lost answer
            # is recognised as the same batch and not recorded twice.
            decisions = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            self._inflight = AdmissionDecisionBatch(
                batch_id=f"adm-{secrets.token_hex(12)}", cluster_id=self.cluster_id, decisions=decisions
            )
        try:
            response = await self._client.post(
                f"{self.url}/api/v1/clusters/{self.cluster_id}/admission/decisions",
                content=self._inflight.model_dump_json(),
                headers={**headers, "Content-Type": "application/json"},
            )
        except (httpx.HTTPError, OSError) as exc:
            log.warning("admission decisions not sent", extra={"error": str(exc)})
            return False
        if response.status_code >= 500 or response.status_code in (401, 429):
            log.warning("admission decisions not taken", extra={"status": response.status_code})
            return False
        if response.status_code >= 400:
            # The service refused the batch itself; resending it unchanged will not help.
            log.error(
                "admission decisions refused", extra={"status": response.status_code, "body": response.text[:300]}
            )
        self._inflight = None
        return True

    async def close(self) -> None:
        await self._client.aclose()
