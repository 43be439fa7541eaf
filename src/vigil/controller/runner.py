"""The controller process: informers -> cluster state -> batches to the service (I/O)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

import vigil
from vigil.wire.inventory import Heartbeat, InventoryDelta, InventorySnapshot

from .informer import Informer
from .kinds import WATCHED_KINDS
from .kube import KubeApi, KubeObject
from .service_client import InventoryService, ServiceRejected, ServiceUnavailable
from .state import ClusterState

log = logging.getLogger(__name__)


@dataclass
class ControllerSettings:
    batch_interval: float = 1.0  # at most one batch per this many seconds
    heartbeat_interval: float = 15.0
    page_size: int = 250
    watch_timeout: int = 300
    retry_max: float = 30.0


@dataclass
class ControllerStats:
    snapshots: int = 0
    deltas: int = 0
    rejected: int = 0
    send_failures: int = 0
    heartbeats: int = 0
    last_batch_at: float = 0.0
    batch_ids: list[str] = field(default_factory=list)


class Controller:
    def __init__(self, api: KubeApi, service: InventoryService, settings: ControllerSettings | None = None) -> None:
        self.api = api
        self.service = service
        self.cluster_id = service.credential.cluster_id
        self.settings = settings or ControllerSettings()
        self.state = ClusterState()
        self.stats = ControllerStats()
        self._changed = asyncio.Event()
        # Batch ids are unique per process start, so a restarted controller never reuses one.
        self._batch_prefix = f"ctl-{secrets.token_hex(6)}"
        self._batch_seq = 0
        self.informers = [
            Informer(kind, api, self, page_size=self.settings.page_size, watch_timeout=self.settings.watch_timeout)
            for kind in WATCHED_KINDS
        ]

    # InformerSink
    def begin_list(self, kind: str) -> None:
        self.state.begin_list(kind)

    def add_listed(self, kind: str, objects: list[KubeObject]) -> None:
        self.state.add_listed(kind, objects)

    def finish_list(self, kind: str) -> None:
        self.state.finish_list(kind)
        self._changed.set()

    def apply(self, kind: str, event_type: str, obj: KubeObject) -> None:
        self.state.apply_event(kind, event_type, obj)
        self._changed.set()

    @property
    def synced(self) -> bool:
        return all(i.synced for i in self.informers)

    def _next_batch_id(self) -> str:
        self._batch_seq += 1
        return f"{self._batch_prefix}-{self._batch_seq}"

    def _next_batch(self) -> InventorySnapshot | InventoryDelta | None:
        if self.state.snapshot_needed:
            # A snapshot is the whole cluster: wait until every kind is listed.
            return self.state.build_snapshot(self.cluster_id, self._next_batch_id()) if self.synced else None
        return self.state.build_delta(self.cluster_id, self._next_batch_id())

    async def _send_loop(self) -> None:
        pending: InventorySnapshot | InventoryDelta | None = None
        retry = 1.0
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
            except TimeoutError:
                pass
            wait = self.stats.last_batch_at + self.settings.batch_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._changed.clear()
            if self.state.snapshot_needed and self.synced and (pending is None or pending.kind == "delta"):
                pending = None  # a fresh snapshot supersedes an unsent delta
            if pending is None:
                pending = self._next_batch()
                if pending is None:
                    continue
            self.stats.last_batch_at = sent_at = time.monotonic()
            try:
                result = await self.service.send_inventory(pending)
            except ServiceUnavailable as exc:
                self.stats.send_failures += 1
                log.warning("batch %s not delivered (%s); retrying in %.0fs", pending.batch_id, exc, retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.settings.retry_max)
                self._changed.set()
                continue
            except ServiceRejected as exc:
                self.stats.rejected += 1
                log.error(
                    "batch %s (%s) refused by the service: %s; a snapshot follows", pending.batch_id, pending.kind, exc
                )
                self.state.reject(pending)
                pending = None
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.settings.retry_max)
                self._changed.set()
                continue
            retry = 1.0
            self.state.acknowledge(pending)
            if pending.kind == "snapshot":
                self.stats.snapshots += 1
            else:
                self.stats.deltas += 1
            self.stats.batch_ids.append(pending.batch_id)
            del self.stats.batch_ids[:-100]
            log.info(
                "batch %s (%s) %s in %.2fs: %s",
                pending.batch_id,
                pending.kind,
                "applied" if result.applied else "already applied",
                time.monotonic() - sent_at,
                result.counts,
            )
            pending = None
            if self.state.has_changes or self.state.snapshot_needed:
                self._changed.set()

    async def _heartbeat_loop(self) -> None:
        beat = Heartbeat(
            cluster_id=self.cluster_id,
            version=getattr(vigil, "__version__", "")[:64],
            interval_seconds=max(1, round(self.settings.heartbeat_interval)),
        )
        while True:
            try:
                await self.service.heartbeat(beat)
                self.stats.heartbeats += 1
            except (ServiceUnavailable, ServiceRejected) as exc:
                log.warning("heartbeat not delivered: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer-{i.kind.kind}") for i in self.informers]
        tasks.append(asyncio.create_task(self._send_loop(), name="send"))
        tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
