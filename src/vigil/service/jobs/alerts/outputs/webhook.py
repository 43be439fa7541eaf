"""Generic webhook: the alert as JSON, signed with HMAC-SHA256 over the timestamp and the body.

Receivers check ``X-Vigil-Signature: sha256=<hex>`` = HMAC-SHA256(secret, ``<X-Vigil-Timestamp>.<body>``)
and refuse timestamps older than a few minutes: the timestamp is inside the signature, so a
captured request cannot be replayed later with a fresh one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random_secrets
import time
from typing import Literal

import orjson
from pydantic import Field

from vigil.service.analysis.alerts.events import AlertEvent, event_document
from vigil.service.analysis.alerts.redact import mask_url
from vigil.service.jobs.alerts.outputs import http
from vigil.service.jobs.alerts.outputs.base import Output, OutputRequest

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
EVENT_HEADER = "X-Vigil-Event"
DELIVERY_HEADER = "X-Vigil-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None, tolerance: float = 300.0
) -> bool:
    """For receivers written in Python: the signature matches and the timestamp is recent."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookRequest(http.HttpOutputRequest):
    kind: Literal["webhook"]
    # At least 128 bits; generated when not given and shown once.
    secret: str | None = Field(None, min_length=16, max_length=256)


class WebhookOutput(Output):
    kind = "webhook"
    summary = "JSON POST signed with HMAC-SHA256 (X-Vigil-Signature over X-Vigil-Timestamp and the body)"
    Request = WebhookRequest
    secret_fields = ("url", "secret")  # the URL may carry a token in its query

    @classmethod
    def split(cls, request: OutputRequest) -> tuple[dict, dict, dict]:
        config, secrets, shown = super().split(request)
        if "secret" not in secrets:
            secrets["secret"] = random_secrets.token_urlsafe(32)
            shown["secret"] = secrets["secret"]
        return config, secrets, shown

    def render(self, event: AlertEvent) -> bytes:
        return orjson.dumps(event_document(event))

    def send(self, payload: bytes, event: AlertEvent) -> None:
        timestamp = str(int(time.time()))  # per attempt, so a retry is not refused as stale
        headers = {
            EVENT_HEADER: event.kind,
            DELIVERY_HEADER: str(event.event_id),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secrets["secret"], timestamp, payload),
        }
        http.post(self.secrets["url"], payload, headers, self.timeout, self.destinations)

    @classmethod
    def destination(cls, config: dict, secrets: dict) -> tuple[str, int]:
        return http.url_destination(secrets["url"])

    def describe(self) -> dict:
        return {"url": mask_url(self.secrets["url"], keep_path=True), "secret": "***", **self.config}
