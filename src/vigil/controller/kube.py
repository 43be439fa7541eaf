"""Kubernetes API access for the controller (I/O): lists, watches and single objects as raw JSON,
over ``vigil.kube``'s client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from vigil.kube.client import KubeClient
from vigil.kube.config import KubeConnection, load_connection

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


async def load_config(
    kubeconfig: Path | None, context: str | None = None, in_cluster: bool | None = None
) -> KubeConnection:
    """The in-cluster service account, or a kubeconfig file's context."""
    return load_connection(kubeconfig, context, in_cluster)


class KubeApi:
    def __init__(self, conn: KubeConnection) -> None:
        self._api = KubeClient(conn)

    async def close(self) -> None:
        await self._api.close()

    async def _get(
        self, path: str, params: list[tuple[str, str]], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        return await self._api.request("GET", path, params=params, timeout=timeout)

    async def request_object(
        self, method: str, path: str, body: KubeObject | None = None, content_type: str = "application/json"
    ) -> KubeObject:
        """Read or write one object (GET, POST, PUT, PATCH); a failure ``Status`` raises ``KubeError``."""
        resp = await self._api.request(
            method,
            path,
            body=orjson.dumps(body) if body is not None else None,
            content_type=content_type,
            timeout=aiohttp.ClientTimeout(total=30),
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
