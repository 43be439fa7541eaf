"""Provenance of running digests (their OCI labels), fetched and stored in a thread of its own.

An integrity pass commits its verdicts, then hands the digests whose provenance is not stored
yet to ``ProvenanceRecorder.submit`` and ends: labels are worth having, but not worth delaying
the next verdict for (a new running image waits for a pass, never for a backlog of labels).
The recorder takes the digests in chunks, each chunk only between passes (``Turns``), so the
per-registry bound of the passes holds for its requests too and a pass waits for at most one
chunk. A digest is fetched once: the pass leaves out those stored, the recorder those queued
or in flight; one whose fetch failed is asked again when a later pass finds it missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from vigil.clock import utcnow
from vigil.model.image import ImageRef
from vigil.registry import RegistryClient
from vigil.registry.probe import fetch_provenance
from vigil.service.store import integrity as store

log = logging.getLogger(__name__)

CHUNK = 64  # digests per turn: a pass waits for at most this many fetches

# (digests with where to ask, what to do per item) -> results, at most the bound at a time per registry
FanOut = Callable[[list[tuple[str, ImageRef]], Callable[[tuple[str, ImageRef]], dict | None]], list[dict | None]]


class Turns:
    """Passes and provenance chunks one at a time, a waiting pass before the next chunk."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._passes_waiting = 0

    @contextmanager
    def for_pass(self) -> Iterator[None]:
        with self._cond:
            self._passes_waiting += 1
            while self._busy:
                self._cond.wait()
            self._passes_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    @contextmanager
    def for_provenance(self) -> Iterator[None]:
        with self._cond:
            while self._busy or self._passes_waiting:
                self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


@dataclass
class ProvenanceStats:
    """Totals since the recorder was made: what the bench and logs read."""

    requests: int = 0  # registry requests of the chunks (passes never run meanwhile)
    recorded: int = 0
    failed: int = 0
    seconds: float = 0.0  # time spent in chunks


class ProvenanceRecorder:
    def __init__(self, engine: Engine, client: RegistryClient, turns: Turns, fan_out: FanOut) -> None:
        self.engine = engine
        self.client = client
        self.turns = turns
        self.fan_out = fan_out
        self.stats = ProvenanceStats()
        self._cond = threading.Condition()
        self._pending: dict[str, ImageRef] = {}
        self._in_flight: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, wanted: dict[str, ImageRef]) -> int:
        """Queue digests (with the trusted image to ask) not queued or in flight; how many were new."""
        with self._cond:
            new = {d: ref for d, ref in wanted.items() if d not in self._pending and d not in self._in_flight}
            self._pending.update(new)
            if new and (self._thread is None or not self._thread.is_alive()):
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="vigil-provenance", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return len(new)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything submitted is recorded (or failed); False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    return False  # stopped with work left: it waits for the next submit
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        """Stop after the chunk in flight; what is still queued is asked again by a later pass."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=30)
        with self._cond:
            self._pending.clear()
            self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _take(self) -> list[tuple[str, ImageRef]] | None:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            batch = []
            for digest in list(self._pending)[:CHUNK]:
                batch.append((digest, self._pending.pop(digest)))
                self._in_flight.add(digest)
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                with self.turns.for_provenance():
                    started = time.perf_counter()
                    before = self.client.stats.requests
                    rows = self._record(batch)
                    self.stats.requests += self.client.stats.requests - before
                    self.stats.seconds += time.perf_counter() - started
                self.stats.recorded += rows
                self.stats.failed += len(batch) - rows
            except Exception:
                log.exception("provenance not recorded", extra={"digests": len(batch)})
                self.stats.failed += len(batch)
            finally:
                with self._cond:
                    self._in_flight.difference_update(d for d, _ in batch)
                    self._cond.notify_all()

    def _record(self, batch: list[tuple[str, ImageRef]]) -> int:
        with self.engine.connect() as conn:
            known = store.known_provenance(conn, [d for d, _ in batch])
        todo = [(d, ref) for d, ref in batch if d not in known]
        now = utcnow()

        def fetch(item: tuple[str, ImageRef]) -> dict | None:
            digest, ref = item
            prov = fetch_provenance(self.client, ref, digest)
            if prov is None:
                return None
            return dict(
                digest=digest,
                source=prov.source,
                revision=(prov.revision or None) and prov.revision[:256],
                created=(prov.created or None) and prov.created[:64],
                authors=prov.authors,
                version=(prov.version or None) and prov.version[:256],
                labels=prov.labels,
                recorded_at=now,
            )

        rows = [row for row in self.fan_out(todo, fetch) if row is not None] if todo else []
        if rows:
            with self.engine.begin() as conn:
                store.record_provenance(conn, rows)
        return len(rows) + len(batch) - len(todo)
