"""Namespace labels for policies scoped by namespace selector (I/O).

An AdmissionReview names the namespace, not its labels. They are read from the API server once
and kept for a short while, and only when some policy selects namespaces by label.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from kubernetes_asyncio import client, config

log = logging.getLogger(__name__)

TTL = 30.0
LOOKUP_BUDGET = 0.5
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class NamespaceLabels:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._api = api
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> NamespaceLabels:
        cfg = client.Configuration()
        if kubeconfig is None and SERVICE_ACCOUNT_TOKEN.exists():
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None, client_configuration=cfg)
        return cls(client.ApiClient(cfg))

    async def labels(self, name: str) -> dict[str, str]:
        """The namespace's labels; on failure only the name label the API server sets on every namespace."""
        hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < TTL:
            return hit[1]
        fallback = {"kubernetes.io/metadata.name": name}
        try:
            ns = await asyncio.wait_for(self._core.read_namespace(name), LOOKUP_BUDGET)
        except Exception as exc:  # noqa: BLE001 - any failure means "labels unknown", never a failed review
            log.warning("namespace labels unavailable", extra={"namespace": name, "error": str(exc)[:300]})
            return fallback
        labels = dict(ns.metadata.labels or {}) or fallback
        self._cache[name] = (time.monotonic(), labels)
        return labels

    async def close(self) -> None:
        await self._api.close()
