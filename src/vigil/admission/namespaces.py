"""Namespace labels for policies scoped by namespace selector (I/O).

An AdmissionReview names the namespace, not its labels. They are read from the API server once
and kept for a short while, and only when some policy selects namespaces by label.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

from vigil.kube.client import KubeClient, read_limited
from vigil.kube.config import load_connection

log = logging.getLogger(__name__)

TTL = 30.0
LOOKUP_BUDGET = 0.5
MAX_NAMESPACE_BYTES = 1 << 20  # a Namespace object is small; a bigger answer is not read


class NamespaceLabels:
    def __init__(self, api: KubeClient) -> None:
        self._api = api
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> NamespaceLabels:
        return cls(KubeClient(load_connection(kubeconfig)))

    async def _read(self, name: str) -> dict[str, str]:
        resp = await self._api.request(
            "GET", f"/api/v1/namespaces/{quote(name, safe='')}", timeout=aiohttp.ClientTimeout(total=LOOKUP_BUDGET)
        )
        try:
            if resp.status != 200:
                raise RuntimeError(f"GET namespace {name}: HTTP {resp.status}")
            body = orjson.loads(await read_limited(resp, MAX_NAMESPACE_BYTES))
        finally:
            resp.release()
        labels = ((body or {}).get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    async def labels(self, name: str) -> dict[str, str]:
        """The namespace's labels; on failure only the name label the API server sets on every namespace."""
        hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < TTL:
            return hit[1]
        fallback = {"kubernetes.io/metadata.name": name}
        try:
            found = await asyncio.wait_for(self._read(name), LOOKUP_BUDGET)
        except Exception as exc:  # noqa: BLE001 - any failure means "labels unknown", never a failed review
            log.warning("namespace labels unavailable", extra={"namespace": name, "error": str(exc)[:300]})
            return fallback
        labels = found or fallback
        self._cache[name] = (time.monotonic(), labels)
        return labels

    async def close(self) -> None:
        await self._api.close()
