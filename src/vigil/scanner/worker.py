"""The scan worker: take a job from the scan queue, pull and catalog the image, store what is inside.

Workers only read registries and write contents through their ``ScanQueue``; matching
advisories is the service's job (it holds the advisory index and re-matches stored packages when
advisories change, without pulling again). Any number of workers can share a queue whose claims
never hand one job to two workers (the service's store on PostgreSQL); on SQLite, claims are
serialized by the database, and one worker is the design.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from vigil.background import PeriodicTask
from vigil.catalog import ImageContents, LayerDigestMismatch, cataloger_versions
from vigil.catalog.limits import ScanLimits
from vigil.model.image import ImageRef
from vigil.model.scan import CatalogerRecord, FileRow, PackageRow, QueueCounts, ScanJob, ScanOutcome, ScanResult
from vigil.registry import Platform, RegistryClient, RegistryError
from vigil.scanner.isolated import ClientSource, IsolatedScanError, pull_isolated
from vigil.scanner.pull import pull_contents
from vigil.scanner.queue import ScanQueue

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def scan_result(contents: ImageContents, manifest_digest: str, source: str, platform: str) -> ScanResult:
    """ImageContents as store rows."""
    files: list[FileRow] = [
        FileRow(path=f.path, kind="file", sha256=f.sha256, size=f.size, mode=f.mode, target=None)
        for f in contents.manifest.files.values()
    ]
    files += [
        FileRow(path=s.path, kind="symlink", sha256=None, size=None, mode=None, target=s.target)
        for s in contents.manifest.symlinks.values()
    ]
    packages = [
        PackageRow(
            type=p.type,
            name=p.name[:512],
            version=p.version[:256],
            purl=p.purl,
            ecosystem=p.ecosystem,
            cataloger=p.cataloger,
            found_in=p.found_in,
            source_name=p.source_name,
            source_version=p.source_version,
            arch=p.arch,
            files=list(p.files),
            details=dict(p.metadata),
        )
        for p in contents.packages
    ]
    return ScanResult(
        manifest_digest=manifest_digest,
        source=source,
        platform=platform,
        os=contents.os.to_dict() if contents.os else None,
        files=files,
        packages=packages,
        warnings=[str(w) for w in contents.warnings],
        catalogers={
            name: CatalogerRecord(version=run.version, packages=run.packages, failed=run.failed)
            for name, run in contents.catalogers.items()
        },
        incomplete=contents.incomplete,
        unread_files=list(contents.unread),
    )


class ScanWorker:
    def __init__(
        self,
        queue: ScanQueue,
        client: RegistryClient,
        *,
        name: str | None = None,
        limits: ScanLimits | None = None,
        isolated: ClientSource | None = None,
    ) -> None:
        self.queue = queue
        self.client = client
        self.limits = limits or ScanLimits()  # what one image may cost (VIGIL_SCAN_*)
        # With a source for the child's registry client, each image is scanned in a child process
        # within limits.max_memory_bytes (the service's own scanner): a hostile image can end that
        # process, never the one holding the worker.
        self.isolated = isolated
        self.name = name or worker_name()
        self.scans = 0  # jobs taken by this worker (each is one pull)
        self._task = PeriodicTask("vigil-scanner", lambda: self._pass(self._task.stop_event), "scanner pass")

    # -- one job --------------------------------------------------------------------------------

    def enqueue_running(self) -> QueueCounts:
        """Queue every running digest not scanned yet (idempotent; the service does it too), and
        the stored scans of running digests that this scanner's catalogers would read otherwise.

        The scanner judges staleness, not the service: it runs the catalogers, so its versions
        are the ones a new scan would record (``vigil.model.scan.is_stale``)."""
        return self.queue.enqueue_running(cataloger_versions())

    def run_once(self) -> ScanOutcome | None:
        """Claim one pending job and scan it; None when the queue is empty."""
        job = self.queue.claim(self.name)
        if job is None:
            return None
        self.scans += 1
        started = time.perf_counter()
        try:
            return self.scan(job)
        except Exception as exc:  # a job is failed with its reason, never left `scanning` for the lease
            log.exception("scan crashed", extra={"digest": job.digest})
            return self._fail(job, f"the scanner failed: {type(exc).__name__}: {exc}"[:1000], started)

    def run_pending(self, limit: int | None = None) -> list[ScanOutcome]:
        """Scan pending jobs until the queue is empty (or ``limit`` jobs were taken)."""
        out: list[ScanOutcome] = []
        while limit is None or len(out) < limit:
            outcome = self.run_once()
            if outcome is None:
                break
            out.append(outcome)
        return out

    def scan(self, job: ScanJob) -> ScanOutcome:
        started = time.perf_counter()
        try:
            platform = Platform.parse(job.platform)
        except ValueError as exc:
            return self._fail(job, f"platform {job.platform!r}: {exc}", started)
        if not job.sources:
            return self._fail(
                job, "no image reference with a registry names this digest; nothing to pull from", started
            )
        errors = []
        for registry, repository in job.sources:
            ref = ImageRef(registry, repository, None, job.digest)
            source = ref.name
            try:
                if self.isolated is not None:
                    pulled = pull_isolated(self.isolated, ref, job.digest, platform, self.limits)
                else:
                    pulled = pull_contents(self.client, ref, job.digest, platform, limits=self.limits)
            except (RegistryError, LayerDigestMismatch, IsolatedScanError, ValueError, OSError) as exc:
                # ValueError/OSError: a layer the catalog cannot read (unknown compression, corrupt tar).
                log.warning("scan pull failed", extra={"digest": job.digest, "source": source, "error": str(exc)})
                errors.append(f"{source}: {exc}")
                continue
            result = scan_result(pulled.contents, pulled.manifest_digest, source, pulled.platform or job.platform)
            kept = self.queue.store_contents(job, result)
            seconds = time.perf_counter() - started
            log.info(
                "image scanned",
                extra={
                    "digest": job.digest,
                    "source": source,
                    "packages": len(result.packages),
                    "files": len(result.files),
                    "seconds": round(seconds, 3),
                },
            )
            return ScanOutcome(
                job.digest, "done" if kept else "lost", None, seconds, len(result.packages), len(result.files)
            )
        return self._fail(job, "; ".join(errors), started)

    def _fail(self, job: ScanJob, error: str, started: float) -> ScanOutcome:
        kept = self.queue.fail(job, error)
        log.warning("scan failed", extra={"digest": job.digest, "attempt": job.attempts, "error": error})
        return ScanOutcome(job.digest, "failed" if kept else "lost", error, time.perf_counter() - started)

    # -- in the background ----------------------------------------------------------------------

    def _pass(self, stop: threading.Event) -> None:
        """Queue running digests, then scan until the queue is empty or ``stop`` is set."""
        self.enqueue_running()
        while not stop.is_set() and self.run_once() is not None:
            pass

    def loop(self, tick: float, stop: threading.Event) -> None:
        """`vigil scanner`: passes until ``stop`` is set, waiting ``tick`` seconds when idle."""
        while not stop.is_set():
            try:
                self._pass(stop)
            except Exception:  # a broken pass must not end scanning for good
                log.exception("scanner pass failed")
            stop.wait(tick)

    def start(self, tick: float = 2.0) -> None:
        self._task.start(tick)

    def stop(self) -> None:
        self._task.stop(timeout=60)

    @property
    def _thread(self):
        # The background thread while it runs (tests check it is gone after the service stops).
        return self._task._thread
