"""The scan queue as the scanner sees it: what needs scanning, one job at a time, results back.

The scanner owns this interface and knows nothing of where the queue lives; the service's store
implements it (``StoreScanQueue`` in ``service/store/contents.py``), and only the code that wires
the two together (the service's composition root, ``vigil scanner``) knows both.
"""

from __future__ import annotations

from typing import Protocol

from vigil.model.scan import CatalogerVersions, QueueCounts, ScanJob, ScanResult


class ScanQueue(Protocol):
    def enqueue_running(self, catalogers: CatalogerVersions) -> QueueCounts:
        """Queue every running digest not scanned yet, retry failed scans whose backoff passed,
        retake jobs whose worker's lease ran out, and queue again the done scans of running
        digests that are stale for ``catalogers`` (``vigil.model.scan.is_stale``). Idempotent."""
        ...

    def claim(self, worker: str) -> ScanJob | None:
        """Take the oldest pending job for ``worker``; None when there is none."""
        ...

    def store_contents(self, job: ScanJob, result: ScanResult) -> bool:
        """Replace the digest's contents with ``result`` and finish the job; False when the job is
        no longer held by its worker (the result is then discarded)."""
        ...

    def fail(self, job: ScanJob, error: str) -> bool:
        """Record a failed attempt (retried with backoff); False when the job is no longer held."""
        ...
