"""The alert outbox: tail the finding history per output, classify, filter, deliver, remember.

Each output has a durable cursor in the store, saved after every delivery, so a restarted
service neither loses nor repeats what was handled. A crash between a receiver accepting an
alert and the cursor being saved can repeat that one alert: receivers deduplicate by
``event_id`` (webhook: X-Vigil-Delivery; syslog: event_id in the structured data).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from vigil.background import PeriodicTask
from vigil.clock import utcnow
from vigil.service.analysis.alerts.cursor import Cursor
from vigil.service.analysis.alerts.destinations import DestinationPolicy
from vigil.service.analysis.alerts.events import (
    AlertEvent,
    FindingView,
    classify,
    event_document,
    meets_threshold,
)
from vigil.service.analysis.alerts.redact import redact
from vigil.service.jobs.alerts.outputs import OUTPUTS, DeliveryFailed, Output
from vigil.service.jobs.alerts.retry import Outcome, RetryPolicy, deliver
from vigil.service.settings import AlertsSettings
from vigil.service.store import alerts as store

log = logging.getLogger(__name__)

MAX_PARALLEL_OUTPUTS = 8
DEFAULT_POLICY = RetryPolicy()


@dataclass
class Report:
    handled: int = 0  # history rows the cursors moved past (alerted or not)
    delivered: int = 0
    dead_lettered: int = 0
    leased_elsewhere: int = 0  # outputs another dispatcher (replica) is serving

    def add(self, other: Report) -> None:
        self.handled += other.handled
        self.delivered += other.delivered
        self.dead_lettered += other.dead_lettered
        self.leased_elsewhere += other.leased_elsewhere


def make_test_event() -> AlertEvent:
    """What `POST /alerts/outputs/{id}/test` sends: event_id 0, kind "test", so receivers can tell it apart."""
    now = utcnow()
    finding = FindingView(
        id=0,
        type="test",
        subject="Vigil alert test: this output is configured correctly",
        first_seen_at=now,
        last_seen_at=now,
    )
    return AlertEvent(
        event_id=0, kind="test", at=now, severity="low", status="open", finding=finding, reason="test", actor="vigil"
    )


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout: float = 10.0,
        batch: int = 200,
        gap_grace: float = 300.0,
        owner: str | None = None,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.destinations = destinations or DestinationPolicy()
        self.policy = policy
        self.timeout = timeout
        self.batch = batch
        # How long a hole in the event ids may stay open (a transaction still committing) before
        # the cursor moves past it as an id that will never exist (a rolled-back transaction).
        self.gap_grace = gap_grace
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # The lease is renewed after every delivery, so it must outlast the slowest single delivery.
        self.lease = timedelta(seconds=max(60.0, 1.5 * policy.worst_case(timeout) + 30.0))
        self._task = PeriodicTask("vigil-alerts", self.dispatch_once, "alert dispatch pass")
        # Set on stop, so a delivery's retry backoff ends at once.
        self._stop = self._task.stop_event
        self._pass_lock = threading.Lock()
        self._gaps: dict[int, dict[int, float]] = {}  # output id -> gap start id -> first seen (monotonic)
        self._claimed: set[int] = set()

    @classmethod
    def from_settings(cls, engine: Engine, settings: AlertsSettings) -> Dispatcher:
        policy = RetryPolicy(settings.attempts, settings.retry_base, settings.retry_max)
        return cls(engine, policy=policy, timeout=settings.timeout, destinations=settings.destinations)

    # -- passes -------------------------------------------------------------------------------

    def dispatch_once(self) -> Report:
        """Deliver everything pending for every output, then return what was done."""
        with self._pass_lock:
            with self.engine.connect() as conn:
                outputs = store.list_outputs(conn)
            total = Report()
            if len(outputs) <= 1:
                reports = [self._drain(o) for o in outputs]
            else:
                # One slow or dead receiver must not hold the others back.
                with ThreadPoolExecutor(
                    min(MAX_PARALLEL_OUTPUTS, len(outputs)), thread_name_prefix="vigil-alert"
                ) as pool:
                    reports = list(pool.map(self._drain, outputs))
            for r in reports:
                total.add(r)
            return total

    def _drain(self, out: store.OutputRow) -> Report:
        report = Report()
        try:
            while not self._stop.is_set() and self._pass(out, report) >= self.batch:
                pass
        except Exception:
            log.exception(
                "alert dispatch failed; will retry on the next pass", extra={"output": out.name, "output_id": out.id}
            )
        return report

    def _until(self):
        return utcnow() + self.lease

    def _pass(self, out: store.OutputRow, report: Report) -> int:
        with self.engine.begin() as conn:
            cursor = store.claim(conn, out.id, self.owner, self._until())
            if cursor is None:
                report.leased_elsewhere += 1
                return 0
            self._claimed.add(out.id)
            rows = store.history_after(conn, cursor, self.batch)
        kind_cls = OUTPUTS.get(out.kind)
        if kind_cls is None:
            # Kept, not skipped: its events wait until a Vigil that knows the kind runs.
            log.error("alert output has an unknown kind; nothing sent", extra={"output": out.name, "kind": out.kind})
            return 0
        sender = kind_cls(out.config, out.secrets, self.timeout, self.destinations)
        try:
            for entry in rows:
                kind = classify(entry.from_status, entry.to_status, entry.severity, entry.previous_severity)
                if kind is None or kind not in out.events or not meets_threshold(entry.severity, out.threshold):
                    cursor.mark(entry.id)
                    report.handled += 1
                    continue
                previous = entry.previous_severity if kind == "escalated" else None
                event = AlertEvent(
                    entry.id,
                    kind,
                    entry.at,
                    entry.severity,
                    entry.to_status,
                    entry.finding,
                    previous,
                    entry.reason,
                    entry.actor,
                )
                outcome = self._deliver(out, sender, event)
                if outcome.interrupted:
                    break  # shutting down: this event stays pending and goes out after the restart
                cursor.mark(entry.id)
                with self.engine.begin() as conn:
                    if not store.save(conn, out.id, self.owner, cursor, self._until()):
                        log.warning("alert cursor lease lost; another dispatcher continues", extra={"output": out.name})
                        return 0
                    if not outcome.delivered:
                        store.add_dead_letter(
                            conn, out, event.event_id, event.finding.id, event.kind, event_document(event),
                            outcome.error or "unknown error", outcome.attempts,
                        )  # fmt: skip
                report.handled += 1
                if outcome.delivered:
                    report.delivered += 1
                else:
                    report.dead_lettered += 1
            self._pass_gaps(out, cursor)
            with self.engine.begin() as conn:
                store.save(conn, out.id, self.owner, cursor, self._until())
        finally:
            sender.close()
        return len(rows)

    def _deliver(self, out: store.OutputRow, sender: Output, event: AlertEvent) -> Outcome:
        secrets = sender.secret_values()
        keys = {"output": out.name, "output_id": out.id, "event_id": event.event_id, "event": event.kind}
        try:
            payload = sender.render(event)
        except Exception as exc:  # a bug must not lose the alert: it becomes a dead letter
            log.exception("alert could not be rendered", extra=keys)
            return Outcome(False, 0, redact(f"render failed: {exc.__class__.__name__}: {exc}", secrets))

        def failed(attempt: int, exc: DeliveryFailed) -> None:
            log.warning("alert delivery failed", extra={**keys, "attempt": attempt, "error": redact(str(exc), secrets)})

        outcome = deliver(lambda: sender.send(payload, event), self.policy, self._stop.wait, failed)
        if outcome.delivered:
            log.info("alert delivered", extra={**keys, "attempts": outcome.attempts})
            return outcome
        outcome = Outcome(
            outcome.delivered, outcome.attempts, redact(outcome.error or "", secrets), outcome.interrupted
        )
        if not outcome.interrupted:
            log.error("alert dead-lettered", extra={**keys, "attempts": outcome.attempts, "error": outcome.error})
        return outcome

    def _pass_gaps(self, out: store.OutputRow, cursor: Cursor) -> None:
        seen = self._gaps.setdefault(out.id, {})
        now = time.monotonic()
        current = cursor.gaps()
        for lo, hi in current:
            first = seen.setdefault(lo, now)
            if now - first >= self.gap_grace:
                cursor.mark_range(lo, hi)
                log.info(
                    "alert cursor passed event ids that were never committed",
                    extra={"output": out.name, "from_id": lo, "to_id": hi},
                )
        for lo in set(seen) - {lo for lo, _ in current}:
            del seen[lo]

    # -- test sends ---------------------------------------------------------------------------

    def send_test(self, out: store.OutputRow) -> Outcome:
        """One attempt with a test event; the error (secrets masked) is the caller's to show."""
        kind_cls = OUTPUTS.get(out.kind)
        if kind_cls is None:
            return Outcome(False, 0, f"unknown output kind {out.kind!r}")
        sender = kind_cls(out.config, out.secrets, self.timeout, self.destinations)
        event = make_test_event()
        try:
            payload = sender.render(event)
            sender.send(payload, event)
            return Outcome(True, 1)
        except DeliveryFailed as exc:
            return Outcome(False, 1, redact(str(exc), sender.secret_values()))
        finally:
            sender.close()

    # -- background ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task.running

    def start(self, tick: float = 1.0) -> None:
        self._task.start(tick)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loop (a retry wait ends at once) and hand the leases back so a successor starts now."""
        self._task.stop(timeout)
        if not self._pass_lock.acquire(timeout=timeout):
            log.warning("alert pass still running at stop; its leases expire on their own")
            return
        try:
            with self.engine.begin() as conn:
                for oid in self._claimed:
                    store.release(conn, oid, self.owner)
            self._claimed.clear()
        except Exception:
            log.warning("could not release alert leases; a successor waits until they expire", exc_info=True)
        finally:
            self._pass_lock.release()
