"""The controller's calls to the service (I/O): register, send inventory batches, heartbeat."""

from __future__ import annotations

import gzip
import logging
import ssl
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import TypeAdapter

from vigil.loopback import is_loopback_host
from vigil.wire.inventory import Heartbeat, IngestResult, InventoryDelta, InventorySnapshot

from .credentials import ClusterCredential

log = logging.getLogger(__name__)
_GZIP_ABOVE = 32 * 1024
_SNAPSHOT_JSON = TypeAdapter(InventorySnapshot)
_DELTA_JSON = TypeAdapter(InventoryDelta)


class ServiceUnavailable(RuntimeError):
    """Try again later: network failure, 5xx, 429, or a refused credential."""


class ServiceRejected(RuntimeError):
    """The service refused the batch itself (4xx): resending it unchanged will not help."""


def check_service_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"service URL {url!r} must be http(s)://host[:port]")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"service URL {url!r}: plain HTTP is allowed only on loopback; use https")
    return url.rstrip("/")


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return f"{resp.status_code} {body.get('error', '')}: {body.get('detail', '')}"
    except ValueError:
        return f"{resp.status_code}: {resp.text[:300]}"


async def register(
    url: str, registration_token: str, name: str, verify: bool | str | ssl.SSLContext = True
) -> ClusterCredential:
    url = check_service_url(url)
    async with httpx.AsyncClient(verify=verify, timeout=30) as http:
        try:
            resp = await http.post(
                f"{url}/api/v1/clusters/register",
                json={"name": name},
                headers={"Authorization": f"Bearer {registration_token}"},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"registering cluster {name!r} at {url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise (ServiceUnavailable if resp.status_code >= 500 else ServiceRejected)(
            f"registering cluster {name!r} at {url}: {_error_text(resp)}"
        )
    body = resp.json()
    return ClusterCredential(str(body["cluster_id"]), str(body["credential"]), str(body.get("name", name)), url)


async def _issue(url: str, cred: ClusterCredential, verify: bool | str | ssl.SSLContext, path: str) -> str:
    url = check_service_url(url)
    async with httpx.AsyncClient(verify=verify, timeout=30) as http:
        try:
            resp = await http.post(
                f"{url}{path}",
                json={},
                headers={"Authorization": f"Bearer {cred.credential}", "User-Agent": "vigil-controller"},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"POST {url}{path}: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise (ServiceUnavailable if resp.status_code >= 500 or resp.status_code == 429 else ServiceRejected)(
            f"POST {url}{path}: {_error_text(resp)}"
        )
    return str(resp.json()["credential"])


async def sensor_enrolment(url: str, cred: ClusterCredential, verify: bool | str | ssl.SSLContext = True) -> str:
    """A new enrolment credential for the cluster's sensors (the earlier one keeps working for the service's
    overlap, so sensors reading the Secret as it changes still enrol)."""
    return await _issue(url, cred, verify, f"/api/v1/clusters/{cred.cluster_id}/sensor-enrolment")


async def admission_credential(url: str, cred: ClusterCredential, verify: bool | str | ssl.SSLContext = True) -> str:
    """A new credential for the cluster's admission webhooks (the earlier one keeps working for the service's
    overlap, so webhooks still holding it reconnect)."""
    return await _issue(url, cred, verify, f"/api/v1/clusters/{cred.cluster_id}/admission-credential")


class InventoryService:
    def __init__(
        self, url: str, credential: ClusterCredential, verify: bool | str | ssl.SSLContext = True, timeout: float = 60
    ) -> None:
        self.url = check_service_url(url)
        self.credential = credential
        self._http = httpx.AsyncClient(
            base_url=self.url,
            verify=verify,
            timeout=timeout,
            headers={"Authorization": f"Bearer {credential.credential}", "User-Agent": "vigil-controller"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if len(body) > _GZIP_ABOVE:
            # Level 1: half the time of level 5 on a 17 MB snapshot, for ~20% more bytes.
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = await self._http.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"POST {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 500 or resp.status_code in (401, 403, 408, 429):
            raise ServiceUnavailable(f"POST {self.url}{path}: {_error_text(resp)}")
        if resp.status_code >= 400:
            raise ServiceRejected(f"POST {self.url}{path}: {_error_text(resp)}")
        return resp

    async def send_inventory(self, batch: InventorySnapshot | InventoryDelta) -> IngestResult:
        # Straight to JSON bytes in pydantic's serializer: no intermediate dicts for 10,000 pods, and no
        # str copy of a 17 MB snapshot next to its bytes (model_dump_json().encode() held both at once).
        body = _SNAPSHOT_JSON.dump_json(batch) if batch.kind == "snapshot" else _DELTA_JSON.dump_json(batch)
        resp = await self._post("/api/v1/ingest/inventory", body)
        return IngestResult.model_validate(resp.json())

    async def heartbeat(self, beat: Heartbeat) -> None:
        await self._post("/api/v1/ingest/heartbeat", orjson.dumps(beat.model_dump(mode="json")))
