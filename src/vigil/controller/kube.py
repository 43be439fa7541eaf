"""Kubernetes API access over kubernetes_asyncio, reading raw JSON (I/O).

The library does configuration (kubeconfig, in-cluster service account, TLS, token
refresh) and HTTP; responses are read raw and parsed with orjson, because generated
model objects for a 10,000-pod list cost seconds and hundreds of megabytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from kubernetes_asyncio import client, config

log = logging.getLogger(__name__)

# A Kubernetes object or watch event as the API server's JSON spells it.
KubeObject = dict[str, Any]


class KubeError(RuntimeError):
    """The API server answered with a failure ``Status`` (or not at all)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def gone(self) -> bool:
        return self.code == 410


@dataclass
class ListPage:
    items: list[KubeObject]
    resource_version: str
    continue_token: str | None


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def runs_in_cluster(kubeconfig: Path | None) -> bool:
    """In a pod, with no kubeconfig asked for: the service account is how to reach the API."""
    return kubeconfig is None and (SERVICE_ACCOUNT / "token").exists()


def default_namespace(kubeconfig: Path | None, context: str | None = None) -> str:
    """The pod's own namespace in-cluster; else the kubeconfig context's namespace; else "default"."""
    if runs_in_cluster(kubeconfig):
        return (SERVICE_ACCOUNT / "namespace").read_text(encoding="utf-8").strip() or "default"
    path = kubeconfig or Path(os.environ.get("KUBECONFIG", "") or Path.home() / ".kube" / "config")
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "default"
    wanted = context or doc.get("current-context")
    for entry in doc.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            return str((entry.get("context") or {}).get("namespace") or "default")
    return "default"


async def load_config(
    kubeconfig: Path | None, context: str | None = None, in_cluster: bool | None = None
) -> client.Configuration:
    """A client configuration: the in-cluster service account, or a kubeconfig file."""
    cfg = client.Configuration()
    if in_cluster or (in_cluster is None and runs_in_cluster(kubeconfig)):
        # kubernetes_asyncio leaves this one function unannotated.
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context, client_configuration=cfg
        )
    return cfg


class KubeApi:
    def __init__(self, cfg: client.Configuration) -> None:
        self._api = client.ApiClient(cfg)

    async def close(self) -> None:
        await self._api.close()

    async def _get(self, path: str, params: list[tuple[str, str]], timeout: Any) -> aiohttp.ClientResponse:
        # Without preloading, the library hands back aiohttp's response unread.
        resp: aiohttp.ClientResponse = await self._api.call_api(
            path,
            "GET",
            query_params=params,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        return resp

    async def request_object(
        self, method: str, path: str, body: KubeObject | None = None, content_type: str = "application/json"
    ) -> KubeObject:
        """Read or write one object (GET, POST, PUT, PATCH); a failure ``Status`` raises ``KubeError``."""
        resp: aiohttp.ClientResponse = await self._api.call_api(
            path,
            method,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=30),
        )
        try:
            if resp.status >= 300:
                raise await self._failure(resp)
            obj: KubeObject = orjson.loads(await resp.read())
            return obj
        finally:
            resp.release()

    @staticmethod
    async def _failure(resp: aiohttp.ClientResponse) -> KubeError:
        body = await resp.read()
        try:
            status = orjson.loads(body)
            return KubeError(resp.status, str(status.get("reason", "")), str(status.get("message", "")))
        except (orjson.JSONDecodeError, AttributeError):
            return KubeError(resp.status, resp.reason or "", body[:300].decode(errors="replace"))

    async def list_page(self, path: str, limit: int, continue_token: str | None) -> ListPage:
        params = [("limit", str(limit))]
        if continue_token:
            params.append(("continue", continue_token))
        resp = await self._get(path, params, aiohttp.ClientTimeout(total=120))
        try:
            if resp.status != 200:
                raise await self._failure(resp)
            body = orjson.loads(await resp.read())
        finally:
            resp.release()
        meta = body.get("metadata") or {}
        return ListPage(
            list(body.get("items") or []), str(meta.get("resourceVersion") or ""), meta.get("continue") or None
        )

    async def watch(self, path: str, resource_version: str, timeout_seconds: int) -> AsyncIterator[KubeObject]:
        """Watch events (dicts with type and object) from ``resource_version``, with bookmarks."""
        params = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        resp = await self._get(
            path, params, aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 30)
        )
        try:
            if resp.status != 200:
                raise await self._failure(resp)
            buffer = b""
            # Lines can be far longer than aiohttp's readline limit (a pod with many containers).
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    line, buffer = buffer[:newline], buffer[newline + 1 :]
                    if line.strip():
                        yield orjson.loads(line)
            if buffer.strip():
                yield orjson.loads(buffer)
        finally:
            resp.close()  # a stream cut short is not reused
