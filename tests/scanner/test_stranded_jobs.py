"""A job whose scanner dies (or crashes) ends `failed` with the reason after a bounded number of
attempts, on both store backends, instead of going back to the queue forever."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.clock import utcnow
from vigil.model.scan import ScanJob, ScanResult
from vigil.scanner.worker import ScanWorker
from vigil.service.store import contents as store
from vigil.service.store.db import create_store_engine, migrate

DIGEST = "sha256:" + "a" * 64
LEASE = 900


@pytest.fixture
def engine(database_url):
    engine = create_store_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_a_scanner_dying_three_times_fails_the_job_with_the_reason(engine):
    t = utcnow()
    with engine.begin() as conn:
        store.enqueue(conn, {DIGEST: "linux/amd64"}, now=t)
    for attempt in (1, 2, 3):
        with engine.begin() as conn:
            job = store.claim(conn, f"w{attempt}", now=t)
            assert job is not None and job.attempts == attempt
        t += timedelta(seconds=LEASE + 1)  # the worker never finishes: its lease runs out
        with engine.begin() as conn:
            counts = store.enqueue(conn, {DIGEST: "linux/amd64"}, lease=LEASE, now=t)
            s = store.scan_status(conn, DIGEST)
        reason = f"the scanner stopped while scanning (attempt {attempt} of 3)"
        if attempt < 3:
            assert counts == {"queued": 0, "retried": 0, "requeued": 1, "untrusted": 0}
            assert (s["status"], s["error"], s["attempts"]) == ("pending", reason, attempt)
    assert counts == {"queued": 0, "retried": 0, "requeued": 0, "untrusted": 0}
    assert (s["status"], s["error"], s["attempts"], s["next_attempt_at"]) == ("failed", reason, 3, None)
    with engine.begin() as conn:
        # never retried, never claimed again
        assert store.enqueue(conn, {DIGEST: "linux/amd64"}, lease=LEASE, now=t + timedelta(days=7))["retried"] == 0
        assert store.claim(conn, "w4", now=t + timedelta(days=7)) is None
        assert store.scan_counts(conn) == {"pending": 0, "scanning": 0, "done": 0, "failed": 1, "not_scanned": 0}


def test_the_last_error_stays_and_the_bound_is_a_setting(engine):
    queue = store.StoreScanQueue(engine, lease=LEASE, max_attempts=2)
    with engine.begin() as conn:
        store.enqueue(conn, {DIGEST: "linux/amd64"})
    first = queue.claim("w1")
    assert first is not None and queue.fail(first, "registry.example: unreachable")
    with engine.begin() as conn:
        s = store.scan_status(conn, DIGEST)
        assert s["next_attempt_at"] is not None  # attempt 1 of 2: retried after the backoff
        store.enqueue(conn, {}, max_attempts=2, now=utcnow() + timedelta(seconds=61))
    second = queue.claim("w2")
    assert second is not None and second.attempts == 2
    assert queue.fail(second, "registry.example: still unreachable")
    with engine.begin() as conn:
        s = store.scan_status(conn, DIGEST)
        assert (s["status"], s["error"], s["attempts"], s["next_attempt_at"]) == (
            "failed",
            "registry.example: still unreachable",
            2,
            None,
        )
        assert store.enqueue(conn, {}, max_attempts=2, now=utcnow() + timedelta(days=1))["retried"] == 0


def test_an_incomplete_scan_is_shown_as_such(engine):
    with engine.begin() as conn:
        store.enqueue(conn, {DIGEST: "linux/amd64"})
        job = store.claim(conn, "w1")
        assert job is not None
        warning = "layer 0 (sha256:...): corrupt tar header (invalid header) at offset 2048 ..."
        result = ScanResult(
            "sha256:" + "b" * 64, "r.example/app", "linux/amd64", None, [], [], [warning], incomplete=True
        )
        assert store.record_result(conn, job, result)
        s = store.scan_status(conn, DIGEST)
    assert (s["status"], s["incomplete"], s["warnings"]) == ("done", True, [warning])


class _Queue:
    """Records what the worker reports (the worker's side of the protocol only)."""

    def __init__(self) -> None:
        self.jobs = [ScanJob(DIGEST, "linux/amd64", 1, "w1", (("r.example", "app"),))]
        self.failed: list[tuple[str, str]] = []

    def claim(self, worker: str) -> ScanJob | None:
        return self.jobs.pop() if self.jobs else None

    def fail(self, job: ScanJob, error: str) -> bool:
        self.failed.append((job.digest, error))
        return True


def test_a_crash_while_scanning_fails_the_job_with_its_reason(monkeypatch):
    def crash(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("vigil.scanner.worker.pull_contents", crash)
    queue = _Queue()
    worker = ScanWorker(queue, client=None, name="w1")  # type: ignore[arg-type]
    outcome = worker.run_once()
    reason = "the scanner failed: RecursionError: maximum recursion depth exceeded"
    assert outcome is not None and (outcome.status, outcome.error) == ("failed", reason)
    assert queue.failed == [(DIGEST, reason)]
