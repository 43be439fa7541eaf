"""Which background jobs this replica runs, when several service processes share one PostgreSQL.

Each job that must run in one place at a time (integrity evaluation, signature verification,
matching, runtime analysis, retention) is gated by a lease in ``job_leases``: before each pass the
job asks ``may_run(job)``; the answer comes from the local view of the lease while it holds, else
from one claim in the database (at most one try per ``retry`` seconds per job). A thread renews
every held lease every third of the period, during long passes too, so a lease runs out only when
its replica died or lost the database; another replica then takes it at its next try, within one
period. Stopping hands the leases back, so a successor starts at once.

A pass already running when its lease lapses (the replica was cut off from the database for a whole
period) runs to its end; the jobs' writes are idempotent (findings are merged by key), so such a
pass at worst repeats work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import Engine

from vigil.service.store import leases as store

log = logging.getLogger(__name__)

# The local view of a lease ends this fraction of the period before the database's does, so this
# replica stops starting passes before another may take the job.
SAFETY_FRACTION = 0.2


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (a pid is reused across restarts),
    within the 128 characters of ``job_leases.holder``."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLeases:
    def __init__(self, engine: Engine, holder: str, period: float, retry: float = 1.0) -> None:
        if period <= 0:
            raise ValueError(f"job lease period {period!r} must be a positive number of seconds")
        self.engine = engine
        self.holder = holder
        self.period = period
        self.retry = min(retry, period / 3)
        self._held: dict[str, float] = {}  # job -> monotonic time until which this replica may start passes
        self._tried: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _local_deadline(self, asked_at: float) -> float:
        # The database set expires_at = its now() + period, and its now() is no earlier than asked_at.
        return asked_at + self.period * (1 - SAFETY_FRACTION)

    def may_run(self, job: str) -> bool:
        """Whether this replica runs ``job``'s next pass (claiming its lease if it is free or ran out)."""
        now = time.monotonic()
        with self._lock:
            if self._held.get(job, 0.0) > now:
                return True
            if now - self._tried.get(job, -self.retry) < self.retry:
                return False
            self._tried[job] = now
            had = job in self._held
        with self.engine.begin() as conn:
            taken = store.claim(conn, job, self.holder, self.period)
        with self._lock:
            if taken:
                self._held[job] = self._local_deadline(now)
            else:
                self._held.pop(job, None)
        if taken and not had:
            log.info("job lease taken", extra={"job": job, "holder": self.holder, "lease_s": self.period})
        elif had and not taken:
            log.warning("job lease lost", extra={"job": job, "holder": self.holder})
        return taken

    def gate(self, job: str):
        """``may_run`` for one job, as a PeriodicTask takes it."""
        return lambda: self.may_run(job)

    def held(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(j for j, until in self._held.items() if until > now)

    def _renew_once(self) -> None:
        with self._lock:
            jobs = list(self._held)
        if not jobs:
            return
        asked_at = time.monotonic()
        with self.engine.begin() as conn:
            kept = store.renew(conn, jobs, self.holder, self.period)
        with self._lock:
            for job in jobs:
                if job in kept:
                    self._held[job] = self._local_deadline(asked_at)
                elif self._held.pop(job, None) is not None:
                    log.warning("job lease lost", extra={"job": job, "holder": self.holder})

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.period / 3):
            try:
                self._renew_once()
            except Exception:
                # The local deadlines run out on their own, so this replica stops starting passes.
                log.exception("job lease renewal failed", extra={"holder": self.holder})

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="vigil-job-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and hand every lease back (call after the jobs stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            jobs = list(self._held)
            self._held.clear()
        try:
            with self.engine.begin() as conn:
                store.release(conn, jobs, self.holder)
        except Exception:
            log.warning("could not hand job leases back; they run out on their own", exc_info=True)
        if jobs:
            log.info("job leases released", extra={"jobs": jobs, "holder": self.holder})
