"""Retention: delete what is older than the period, in bounded batches with a pause between them.

Each batch is its own short transaction of at most ``batch_rows`` rows, and the job waits
``pause`` seconds after each one, so ingest and analysis take the write lock in between (on SQLite
there is one writer at a time). A pass goes through every rule until a batch comes back short; on
several replicas one of them runs it (the ``retention`` job lease). The job looks every second
whether a pass is due, so a replica that takes the lease over from a dead one starts a pass at once
instead of after a whole interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from vigil.background import PeriodicTask
from vigil.clock import utcnow
from vigil.service.settings import RetentionSettings
from vigil.service.store.retention import RULES

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    deleted: dict[str, int] = field(default_factory=dict)  # rule -> rows
    batches: int = 0
    seconds: float = 0.0


class RetentionJob:
    def __init__(self, engine: Engine, settings: RetentionSettings) -> None:
        self.engine = engine
        self.period = timedelta(days=settings.period_days)
        self.batch_rows = settings.batch_rows
        self.pause = settings.pause
        self.interval = settings.interval
        self._next_pass = 0.0  # monotonic
        self._task = PeriodicTask("vigil-retention", self._when_due, "retention pass")

    def _when_due(self) -> None:
        if time.monotonic() >= self._next_pass:
            self.run_pass()
            self._next_pass = time.monotonic() + self.interval

    def run_pass(self) -> PassReport:
        started = time.monotonic()
        cutoff = utcnow() - self.period
        report = PassReport()
        stop = self._task.stop_event
        for rule in RULES:
            total = 0
            while not stop.is_set():
                with self.engine.begin() as conn:
                    n = rule.prune(conn, cutoff, self.batch_rows)
                total += n
                report.batches += 1
                if n < self.batch_rows:
                    break
                stop.wait(self.pause)
            report.deleted[rule.name] = total
        report.seconds = round(time.monotonic() - started, 3)
        if any(report.deleted.values()):
            log.info(
                "retention pass",
                extra={"deleted": report.deleted, "batches": report.batches, "cutoff": cutoff.isoformat()},
            )
        return report

    def start(self, tick: float = 1.0, gate: Callable[[], bool] | None = None) -> None:
        """Look every ``tick`` seconds whether a pass is due (one per ``interval``), while ``gate`` allows."""
        self._task.start(min(tick, self.interval), gate)

    def stop(self) -> None:
        self._task.stop()
