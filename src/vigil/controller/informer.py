"""List-then-watch for one kind (I/O), feeding a sink with whole lists and events.

Pages through the list with ``limit``/``continue``, then watches from the list's
resourceVersion with bookmarks. A watch that ends at its own timeout is resumed from
the last resourceVersion seen; a ``410 Gone``, an ERROR event, a stream cut short or a
connection failure (an API server restart) leads to a fresh list, which the sink
receives whole so that it can send a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import aiohttp

from .kinds import WatchedKind
from .kube import KubeApi, KubeError, KubeObject

log = logging.getLogger(__name__)


class InformerSink(Protocol):
    """Receives a list page by page (begin, pages, finish), then watch events."""

    def begin_list(self, kind: str) -> None: ...

    def add_listed(self, kind: str, objects: list[KubeObject]) -> None: ...

    def finish_list(self, kind: str) -> None: ...

    def apply(self, kind: str, event_type: str, obj: KubeObject) -> None: ...


class Informer:
    def __init__(
        self,
        kind: WatchedKind,
        api: KubeApi,
        sink: InformerSink,
        *,
        page_size: int = 500,
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
    ) -> None:
        self.kind = kind
        self.api = api
        self.sink = sink
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.synced = False
        self.lists = 0  # how many full lists were made: the first, then one per relist
        self.resource_version = ""
        self.relist_reasons: list[str] = []  # why each relist happened: gone, error, dropped, or an exception name

    async def list_all(self) -> str:
        """List every object into the sink, page by page; returns the list's resourceVersion.

        Each page goes to the sink as it arrives, so only one page of raw JSON is held at a time.
        """
        while True:
            token = None
            self.sink.begin_list(self.kind.kind)
            try:
                while True:
                    page = await self.api.list_page(self.kind.path, self.page_size, token)
                    self.sink.add_listed(self.kind.kind, page.items)
                    token = page.continue_token
                    if not token:
                        self.sink.finish_list(self.kind.kind)
                        return page.resource_version
            except KubeError as exc:
                if not exc.gone:
                    raise
                # The snapshot the pages came from is compacted away: start the list over.
                log.info("%s: list continuation expired (%s); listing again", self.kind.kind, exc.message)

    async def _watch(self) -> str:
        """Watch until the stream ends; returns why: "timeout" (resume) or a reason to relist."""
        started = time.monotonic()
        async for event in self.api.watch(self.kind.path, self.resource_version, self.watch_timeout):
            etype = event.get("type")
            raw = event.get("object")
            obj: KubeObject = raw if isinstance(raw, dict) else {}
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if etype in ("ADDED", "MODIFIED", "DELETED"):
                try:
                    self.sink.apply(self.kind.kind, etype, obj)
                except Exception:  # an odd object must not stop the informer
                    log.exception("%s: %s event not applied; object keys: %s", self.kind.kind, etype, sorted(obj))
                if rv:
                    self.resource_version = rv
            elif etype == "BOOKMARK":
                if rv:
                    self.resource_version = rv
            elif etype == "ERROR":
                code, message = obj.get("code"), obj.get("message")
                if code == 410:
                    log.info(
                        "%s: watch from resourceVersion %s expired (%s); relisting",
                        self.kind.kind,
                        self.resource_version,
                        message,
                    )
                    return "gone"
                log.warning(
                    "%s: watch ERROR event %s %s: %s; relisting", self.kind.kind, code, obj.get("reason"), message
                )
                return "error"
            else:
                log.warning(
                    "%s: watch event of unknown type %r ignored; keys: %s", self.kind.kind, etype, sorted(event)
                )
        if time.monotonic() - started >= self.watch_timeout - 1:
            return "timeout"
        log.info("%s: watch stream ended early (after %.1fs); relisting", self.kind.kind, time.monotonic() - started)
        return "dropped"

    async def run(self) -> None:
        delay = self.retry_delay
        while True:
            try:
                self.resource_version = await self.list_all()
                self.synced = True
                self.lists += 1
                delay = self.retry_delay
                while (why := await self._watch()) == "timeout":
                    pass
                self.relist_reasons.append(why)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError, KubeError) as exc:
                self.relist_reasons.append(type(exc).__name__)
                log.warning("%s: %s: %s; relisting in %.1fs", self.kind.kind, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:
                self.relist_reasons.append(type(exc).__name__)
                log.exception("%s: unexpected failure; relisting in %.1fs", self.kind.kind, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            self.synced = False
