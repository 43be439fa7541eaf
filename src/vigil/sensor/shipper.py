"""Send spooled runtime batches and heartbeats to the service.

Batches leave the spool in sequence order and are removed only once the
service acknowledged them (2xx). A 5xx or a transport error stops the round:
the same batch is retried next round, so order is kept and nothing is skipped.
A 4xx other than 401/408/429 means the service refuses that batch for good; it is
moved to ``rejected/`` beside the spool (kept for inspection, counted), never
retried forever. A 401 is about the credential (revoked, or replaced when this
node was enrolled again), not the batch: batches stay spooled until it is replaced.
"""

from __future__ import annotations

import gzip
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vigil.sensor.spool import Spool
from vigil.wire.runtime import (
    RUNTIME_INGEST_PATH,
    SENSOR_HEARTBEAT_PATH,
    SensorHeartbeat,
)

log = logging.getLogger(__name__)

_RETRYABLE_4XX = {401, 408, 429}


def read_credential(path: Path) -> str:
    """A credential from a file (a mounted Secret); the value is never logged."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read credential file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ValueError(f"credential file {path} is not UTF-8 text") from None
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"credential file {path} must hold one token without whitespace")
    return value


@dataclass
class ShipResult:
    delivered: int = 0
    rejected: int = 0
    error: str | None = None


class Shipper:
    def __init__(
        self,
        service: str,
        credential: str,
        spool: Spool,
        *,
        compress: bool = True,
        timeout_s: float = 10.0,
        backoff_max_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: bool | ssl.SSLContext = True,
    ):
        self.spool = spool
        self.compress = compress
        self._client = httpx.Client(
            base_url=service.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}", "User-Agent": "vigil-sensor"},
            timeout=timeout_s,
            transport=transport,
            verify=verify,
        )
        self.backoff_max_s = backoff_max_s
        self._failures = 0
        self._next_try = 0.0
        self.delivered = 0
        self.rejected = 0

    def _post(self, path: str, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if self.compress:
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return self._client.post(path, content=body, headers=headers)

    def ship(self, *, force: bool = False) -> ShipResult:
        """Send what the spool holds, oldest first, until done or the service fails."""
        result = ShipResult()
        if not force and time.monotonic() < self._next_try:
            return result
        for entry in self.spool.entries():
            try:
                body = entry.path.read_bytes()
                resp = self._post(RUNTIME_INGEST_PATH, body)
            except (httpx.HTTPError, OSError) as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                break
            if resp.is_success:
                self.spool.remove(entry)
                result.delivered += 1
            elif 400 <= resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX:
                rejected = self.spool.dir.parent / (self.spool.dir.name + "-rejected")
                rejected.mkdir(exist_ok=True, mode=0o700)
                entry.path.rename(rejected / entry.path.name)
                result.rejected += 1
                log.error(
                    "service refused batch seq %d with %d: %s (kept in %s)",
                    entry.seq,
                    resp.status_code,
                    resp.text[:500],
                    rejected,
                )
            else:
                result.error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                break
        if result.error:
            self._failures += 1
            delay = min(self.backoff_max_s, 0.5 * 2 ** min(self._failures, 10))
            self._next_try = time.monotonic() + delay
            log.warning(
                "service unavailable (%s); %d batches spooled, retrying in %.1fs", result.error, len(self.spool), delay
            )
        else:
            self._failures = 0
            self._next_try = 0.0
        self.delivered += result.delivered
        self.rejected += result.rejected
        return result

    def heartbeat(self, beat: SensorHeartbeat) -> dict[str, Any] | None:
        """Send a heartbeat; returns the service's JSON answer, or None when it could not be reached."""
        try:
            resp = self._post(SENSOR_HEARTBEAT_PATH, beat.model_dump_json().encode())
        except httpx.HTTPError as exc:
            log.warning("heartbeat not delivered: %s", exc)
            return None
        if not resp.is_success:
            log.warning("heartbeat refused with HTTP %d: %s", resp.status_code, resp.text[:200])
            return None
        try:
            answer = resp.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        self._client.close()
