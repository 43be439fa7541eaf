"""POSTing an alert over HTTP(S) and judging the answer: shared by the webhook and Slack outputs."""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus

import httpx
from pydantic import field_validator
from pydantic_core.core_schema import ValidationInfo

from vigil import __version__
from vigil.service.analysis.alerts.destinations import DestinationPolicy
from vigil.service.analysis.alerts.redact import redact
from vigil.service.analysis.alerts.validation import check_http_url
from vigil.service.jobs.alerts.outputs.base import DeliveryFailed, OutputRequest
from vigil.service.jobs.alerts.outputs.destination import resolve_allowed

# Retrying these cannot succeed: the request itself, the URL or the credentials are wrong.
_RETRYABLE_4XX = {408, 425, 429}
USER_AGENT = f"vigil-alerts/{__version__}"


class HttpOutputRequest(OutputRequest):
    """The settings of an output that POSTs to a URL; plain http only to loopback unless allowed."""

    allow_insecure_http: bool = False
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        return check_http_url(v, bool(info.data.get("allow_insecure_http")))


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class _RedactSecrets(logging.Filter):
    """httpx logs every request's full URL at INFO; a Slack URL is a credential, so mask it there."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if secrets:
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_REDACT = _RedactSecrets()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACT)


def _secret_parts(url: str) -> list[str]:
    """The URL and its path and query: any of them may be what a library logs."""
    parts = httpx.URL(url)
    return [url, parts.raw_path.decode("ascii", "replace"), parts.path, parts.query.decode("ascii", "replace")]


def _status_text(code: int) -> str:
    """``HTTP 500 Internal Server Error``: the status and its standard phrase, never the receiver's body.

    The text is stored and shown to admins (dead letters, `/test`); echoing what the far end answered
    would let an output aimed at an internal service read that service's responses through Vigil.
    """
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def url_destination(url: str) -> tuple[str, int]:
    parts = httpx.URL(url)
    return parts.host, parts.port or (443 if parts.scheme == "https" else 80)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, policy: DestinationPolicy) -> None:
    _REDACT.add(*(p for p in _secret_parts(url) if p not in ("", "/")))
    target = httpx.URL(url)
    host, port = url_destination(url)
    _, sockaddr = resolve_allowed(policy, host, port)[0]
    # The request goes to the address just checked; the name still travels in Host and in TLS (SNI and
    # certificate check), so the receiver sees exactly what it would have without the pinning.
    pinned = target.copy_with(host=sockaddr[0])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": target.netloc.decode("ascii"),
        **headers,
    }
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    try:
        # Redirects are not followed: a signed alert goes only where it was configured to.
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            resp = client.send(
                client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
            )
    except httpx.TimeoutException as exc:
        raise DeliveryFailed(f"timed out after {timeout}s ({exc.__class__.__name__})") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{exc.__class__.__name__}: {exc}") from None
    if resp.status_code < 300:
        return
    detail = _status_text(resp.status_code)
    if 300 <= resp.status_code < 400:
        raise DeliveryFailed(f"{detail} (redirects are not followed)", permanent=True)
    if 400 <= resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX:
        raise DeliveryFailed(detail, permanent=True)
    raise DeliveryFailed(detail, retry_after=_retry_after(resp))
