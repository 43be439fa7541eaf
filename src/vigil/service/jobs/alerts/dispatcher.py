"""The alert outbox: tail the finding history per output, classify, filter, deliver, remember.

Each output has a durable cursor in the store, saved after every delivery, so a restarted
service neither loses nor repeats what was handled. A crash between a receiver accepting an
alert and the cursor being saved can repeat that one alert: receivers deduplicate by
``event_id`` (webhook: X-Vigil-Delivery; syslog: event_id in the structured data).

On several replicas each output's cursor is leased to one dispatcher for the job-lease period
(``VIGIL_JOB_LEASE_SECONDS``): saving the cursor extends it, and a thread renews it every third of
the period while a delivery waits on retries, so a replica that dies hands its outputs over within
one period. A dispatcher sends only within its own view of the lease, which ends a fifth of the
period before the database's: before each attempt it renews the lease if less than the attempt's
timeout is left, and stops (the alert stays pending) when it cannot, so it never sends after
another dispatcher may have taken the output.
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
from vigil.service.jobs.leases import SAFETY_FRACTION
from vigil.service.settings import AlertsSettings
from vigil.service.store import alerts as store

log = logging.getLogger(__name__)

MAX_PARALLEL_OUTPUTS = 8
DEFAULT_POLICY = RetryPolicy()
DEFAULT_LEASE_SECONDS = 15.0
# An attempt's timeout leaves this fraction of the period for the renewal before it.
RENEWAL_ROOM = 0.1


class LeaseLost(Exception):
    """This dispatcher may no longer send for an output: another one may hold its cursor."""


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
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"alert cursor lease {lease_seconds!r} must be a positive number of seconds")
        self.engine = engine
        self.destinations = destinations or DestinationPolicy()
        self.policy = policy
        self.timeout = timeout
        self.batch = batch
        # How long a hole in the event ids may stay open (a transaction still committing) before
        # the cursor moves past it as an id that will never exist (a rolled-back transaction).
        self.gap_grace = gap_grace
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        # Each step of an attempt (connect, send, read the answer) ends within this dispatcher's view
        # of the lease, so no attempt is under way when another dispatcher may take the output.
        self.attempt_timeout = min(timeout, lease_seconds * (1 - SAFETY_FRACTION - RENEWAL_ROOM))
        self._held: dict[int, float] = {}  # output id -> monotonic time until which this dispatcher may send
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._renewer_stop = threading.Event()
        self._task = PeriodicTask("vigil-alerts", self.dispatch_once, "alert dispatch pass")
        # Set on stop, so a delivery's retry backoff ends at once.
        self._stop = self._task.stop_event
        self._pass_lock = threading.Lock()
        self._gaps: dict[int, dict[int, float]] = {}  # output id -> gap start id -> first seen (monotonic)
        self._claimed: set[int] = set()

    @classmethod
    def from_settings(cls, engine: Engine, settings: AlertsSettings, lease_seconds: float) -> Dispatcher:
        policy = RetryPolicy(settings.attempts, settings.retry_base, settings.retry_max)
        return cls(
            engine,
            policy=policy,
            timeout=settings.timeout,
            destinations=settings.destinations,
            lease_seconds=lease_seconds,
        )

    # -- the cursor leases --------------------------------------------------------------------

    def _hold(self, output_id: int, asked_at: float) -> None:
        # The database set lease_until = its now() + period, and its now() is no earlier than asked_at.
        with self._held_lock:
            self._held[output_id] = asked_at + self.lease_seconds * (1 - SAFETY_FRACTION)

    def _drop(self, output_id: int) -> None:
        with self._held_lock:
            self._held.pop(output_id, None)

    def _left(self, output_id: int) -> float:
        with self._held_lock:
            return self._held.get(output_id, 0.0) - time.monotonic()

    def _renew(self, output_ids: list[int]) -> set[int]:
        asked_at = time.monotonic()
        with self.engine.begin() as conn:
            kept = store.renew(conn, output_ids, self.owner, self.lease_seconds)
        for oid in output_ids:
            if oid in kept:
                self._hold(oid, asked_at)
            else:
                self._drop(oid)
        return kept

    def _fence(self, out: store.OutputRow) -> None:
        """Before an attempt: enough of the lease left for it, renewed if need be, else LeaseLost."""
        if self._left(out.id) >= self.attempt_timeout:
            return
        try:
            self._renew([out.id])
        except Exception as exc:
            raise LeaseLost(f"could not renew the lease: {exc.__class__.__name__}") from exc
        if self._left(out.id) < self.attempt_timeout:
            raise LeaseLost("the lease is held by another dispatcher")

    def _renew_loop(self) -> None:
        while not self._renewer_stop.wait(self.lease_seconds / 3):
            with self._held_lock:
                held = list(self._held)
            if not held:
                continue
            try:
                self._renew(held)
            except Exception:
                # The local views run out on their own, so this dispatcher stops sending.
                log.exception("alert cursor lease renewal failed", extra={"owner": self.owner})

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

    def _pass(self, out: store.OutputRow, report: Report) -> int:
        asked_at = time.monotonic()
        with self.engine.begin() as conn:
            cursor = store.claim(conn, out.id, self.owner, self.lease_seconds)
            if cursor is None:
                self._drop(out.id)
                report.leased_elsewhere += 1
                return 0
            self._hold(out.id, asked_at)
            self._claimed.add(out.id)
            rows = store.history_after(conn, cursor, self.batch)
        kind_cls = OUTPUTS.get(out.kind)
        if kind_cls is None:
            # Kept, not skipped: its events wait until a Vigil that knows the kind runs.
            log.error("alert output has an unknown kind; nothing sent", extra={"output": out.name, "kind": out.kind})
            return 0
        sender = kind_cls(out.config, out.secrets, self.attempt_timeout, self.destinations)
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
                try:
                    outcome = self._deliver(out, sender, event)
                except LeaseLost as exc:
                    # Not sent: the dispatcher that holds the cursor now sends it.
                    log.warning(
                        "alert cursor lease lost; another dispatcher continues",
                        extra={"output": out.name, "event_id": event.event_id, "error": str(exc)},
                    )
                    return 0
                if outcome.interrupted:
                    break  # shutting down: this event stays pending and goes out after the restart
                cursor.mark(entry.id)
                asked_at = time.monotonic()
                with self.engine.begin() as conn:
                    if not store.save(conn, out.id, self.owner, cursor, self.lease_seconds):
                        self._drop(out.id)
                        log.warning("alert cursor lease lost; another dispatcher continues", extra={"output": out.name})
                        return 0
                    self._hold(out.id, asked_at)
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
            asked_at = time.monotonic()
            with self.engine.begin() as conn:
                if store.save(conn, out.id, self.owner, cursor, self.lease_seconds):
                    self._hold(out.id, asked_at)
                else:
                    self._drop(out.id)
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

        def attempt() -> None:
            self._fence(out)
            sender.send(payload, event)

        outcome = deliver(attempt, self.policy, self._stop.wait, failed)
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
        if self._renewer is None or not self._renewer.is_alive():
            self._renewer_stop.clear()
            self._renewer = threading.Thread(target=self._renew_loop, name="vigil-alert-leases", daemon=True)
            self._renewer.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loop (a retry wait ends at once) and hand the leases back so a successor starts now."""
        self._task.stop(timeout)
        self._renewer_stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=timeout)
            self._renewer = None
        if not self._pass_lock.acquire(timeout=timeout):
            log.warning("alert pass still running at stop; its leases expire on their own")
            return
        try:
            with self.engine.begin() as conn:
                for oid in self._claimed:
                    store.release(conn, oid, self.owner)
            self._claimed.clear()
            with self._held_lock:
                self._held.clear()
        except Exception:
            log.warning("could not release alert leases; a successor waits until they expire", exc_info=True)
        finally:
            self._pass_lock.release()
