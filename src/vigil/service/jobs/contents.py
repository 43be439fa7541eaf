"""Image contents -> vulnerable_package and malicious_package findings.

One pass (``run_pass``):

1. queue every running digest that has no scan yet (the scanner's job queue);
2. with ``scan=True`` and an in-process worker, let it queue the stored scans its
   catalogers made stale, then scan what is queued now (tests and
   ``POST /api/v1/scans/run``; the background worker does both otherwise);
3. reload the advisory index when the advisory database (``intel.db`` in the
   data dir, written by ``vigil intel import|sync``) has a new revision;
4. match the stored packages of every scanned digest not matched against that
   revision yet: a new advisory re-matches every image, and nothing is pulled
   again;
5. bring findings in line: one per (cluster, namespace, workload, image,
   package, vulnerability), so filters by cluster and namespace and the
   workload pages work as for every other finding. Each resolves when the
   workload stops running the image, or when the vulnerability no longer
   matches the installed version (an advisory was corrected or withdrawn).

A finding's scope is the workload running the image; its subject key is
``<package hash>:<advisory id>``, with the package hash over (type, name, the
file it was found in) and the smallest matched advisory id of the alias group
(it changes only when another advisory about the same vulnerability joins).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select

from vigil.background import PeriodicTask
from vigil.intel import AdvisoryIndex, AdvisoryStore
from vigil.intel.coverage import Coverage, EcosystemCoverage, needed_ecosystems
from vigil.intel.store import StoreError, read_revision
from vigil.intel.vulnmatch import key_id, match_packages
from vigil.model.findings import SEVERITIES, Family, FindingStatus, FindingType
from vigil.model.image import image_text
from vigil.model.scan import QueueCounts, ScanOutcome
from vigil.registry import RegistryClient
from vigil.service.store import contents as store
from vigil.service.store import findings as finding_store
from vigil.service.store.integrity import RunningImage, running_images

if TYPE_CHECKING:
    from vigil.intel.sync import SyncReport

log = logging.getLogger(__name__)

DEDUP_PREFIX = "content:"
ACTOR = "vulnerabilities"
NO_DATABASE = "none"  # the revision matched against when there is no advisory database


@dataclass
class ContentPassReport:
    queued: dict = field(default_factory=dict)
    scanned: list[ScanOutcome] = field(default_factory=list)
    intel_revision: str = NO_DATABASE
    intel_reloaded: bool = False
    matched: int = 0
    findings_synced: bool = False
    opened: int = 0
    resolved: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "queued": self.queued,
            "scanned": [
                {"digest": s.digest, "status": s.status, "error": s.error, "packages": s.packages, "files": s.files}
                for s in self.scanned
            ],
            "intel_revision": self.intel_revision,
            "intel_reloaded": self.intel_reloaded,
            "matched": self.matched,
            "findings_synced": self.findings_synced,
            "opened": self.opened,
            "resolved": self.resolved,
            "seconds": round(self.seconds, 4),
        }


def _package_hash(v: store.StoredVulnerability) -> str:
    return store.package_key(v.package_type, v.package_name, v.found_in)


def _finding_type(v: store.StoredVulnerability) -> FindingType:
    return FindingType.MALICIOUS_PACKAGE if v.malicious else FindingType.VULNERABLE_PACKAGE


def subject_key(v: store.StoredVulnerability) -> str:
    return f"{_package_hash(v)}:{v.key_id}"


def dedup_key(r: RunningImage, v: store.StoredVulnerability) -> str:
    kind = _finding_type(v)
    workload = f"{r.workload_kind}/{r.workload_name}"
    key = f"{DEDUP_PREFIX}{r.cluster_id}:{r.image_pk}:{r.namespace}:{workload}:{kind}:{_package_hash(v)}:{v.key_id}"
    if len(key) > 512:  # only absurdly long names get here; keep the key unique and within the column
        workload = hashlib.sha256(workload.encode()).hexdigest()[:24]
        key = (
            f"{DEDUP_PREFIX}{r.cluster_id}:{r.image_pk}:{r.namespace}:{workload}:{kind}:{_package_hash(v)}:{v.key_id}"[
                :512
            ]
        )
    return key


def observation(r: RunningImage, v: store.StoredVulnerability) -> finding_store.Observation:
    kind = _finding_type(v)
    # A malicious package is critical whatever its advisory says; otherwise the advisory's level.
    advisory_level = v.severity if v.severity in SEVERITIES else None
    severity = kind.severity() if v.malicious else (advisory_level or kind.severity())
    verb = "malicious package" if v.malicious else v.vuln_id
    subject = f"{r.namespace}/{r.workload_kind}/{r.workload_name}: {v.package_name} {v.package_version} ({verb})"
    evidence = {
        "image": image_text(r.registry, r.repository, r.tag, r.digest),
        "digest": r.digest,
        "package": {
            "type": v.package_type,
            "name": v.package_name,
            "version": v.package_version,
            "purl": v.purl,
            "ecosystem": v.ecosystem,
            "found_in": v.found_in,
            "source_name": v.source_name,
            "source_version": v.source_version,
        },
        "installed_version": v.package_version,
        "fixed_versions": v.fixed_versions,
        "vulnerability": v.vuln_id,
        "advisory_ids": v.advisory_ids,
        "aliases": v.aliases,
        "severity": {"level": v.severity, "score": v.score, "source": v.severity_source},
        "malicious": v.malicious,
        "summary": v.summary,
        "links": v.links,
    }
    return finding_store.Observation(
        dedup_key=dedup_key(r, v),
        type=kind,
        severity=severity,
        subject=subject[:1024],
        evidence=evidence,
        cluster_id=r.cluster_id,
        namespace=r.namespace,
        workload_kind=r.workload_kind,
        workload_name=r.workload_name,
        image_pk=r.image_pk,
        subject_key=subject_key(v),
    )


def vulnerability_rows(index: AdvisoryIndex, packages: Sequence[Any]) -> tuple[list[dict], list[str]]:
    """image_vulnerabilities rows for stored package rows (image_packages rows: a PackageLike with an id)."""
    matched, warnings = match_packages(index, packages)
    rows = []
    for pm in matched:
        pkg = packages[pm.index]
        for v in pm.vulnerabilities:
            rows.append(
                dict(
                    package_id=pkg.id,
                    vuln_id=v.id[:128],
                    key_id=key_id(v)[:128],
                    advisory_ids=list(v.advisory_ids),
                    aliases=list(v.aliases),
                    severity=v.severity.level,  # the advisory's; a malicious package's finding is critical
                    score=v.severity.score,
                    severity_source=(v.severity.source or None) and v.severity.source[:32],
                    fixed_versions=list(v.fixed_versions),
                    malicious=v.malicious,
                    summary=v.summary,
                    links=list(v.links),
                )
            )
    return rows, warnings


class InProcessScanner(Protocol):
    """The scanner worker the service runs in its own process (``vigil.scanner.worker.ScanWorker``)."""

    client: RegistryClient

    def enqueue_running(self) -> QueueCounts: ...

    def run_pending(self, limit: int | None = None) -> list[ScanOutcome]: ...

    def start(self, tick: float = 2.0) -> None: ...

    def stop(self) -> None: ...


class IntelHolder:
    """The advisory index the service matches with, reloaded when the database's revision changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.index = AdvisoryIndex()
        self.revision = NO_DATABASE
        self.advisories = 0
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._records: dict[str, tuple[int, datetime | None]] = {}
        self._records_revision = NO_DATABASE

    def refresh(self, force: bool = False) -> bool:
        """Load the index if the database changed (or with ``force``). True when reloaded."""
        with self._lock:
            try:
                current = read_revision(self.path)
            except StoreError as exc:
                if self.error != str(exc):
                    log.error(
                        "advisory database unreadable; keeping the loaded index",
                        extra={"path": str(self.path), "error": str(exc)},
                    )
                self.error = str(exc)
                return False
            current = current if current is not None else NO_DATABASE
            if current == self.revision and not force:
                return False
            started = time.perf_counter()
            if current == NO_DATABASE:
                index, advisories = AdvisoryIndex(), 0
            else:
                with AdvisoryStore(self.path) as db:
                    index, report = db.load_index()
                    current = db.revision()  # read with the data: an import in between shows up next time
                for rejection in report.rejected:
                    log.warning("stored advisory no longer parses; left out", extra={"advisory": str(rejection)})
                advisories = len(index)
            self.index, self.revision, self.advisories = index, current, advisories
            self.loaded_at, self.error = time.time(), None
            log.info(
                "advisory index loaded",
                extra={
                    "path": str(self.path),
                    "revision": current,
                    "advisories": advisories,
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            return True

    def coverage(self, needed: dict[str, int]) -> Coverage:
        """The coverage of a match that looked ``needed`` (ecosystem -> packages) up in the loaded
        database: per ecosystem its advisories and the newest one's time, counted once per revision."""
        with self._lock:
            if self._records_revision != self.revision:
                self._records, self._records_revision = {}, self.revision
            missing = [e for e in needed if e not in self._records]
            if missing and self.revision != NO_DATABASE:
                try:
                    with AdvisoryStore(self.path) as db:
                        for e in missing:
                            self._records[e] = db.ecosystem_records(e)
                except StoreError as exc:
                    log.error("advisory database unreadable for coverage", extra={"error": str(exc)})
            return Coverage(
                tuple(EcosystemCoverage(e, n, *self._records.get(e, (0, None))) for e, n in sorted(needed.items()))
            )

    def status(self) -> dict:
        return {
            "path": str(self.path),
            "revision": self.revision,
            "advisories": self.advisories,
            "loaded_at": self.loaded_at,
            "error": self.error,
        }


class VulnerabilityAnalyzer:
    def __init__(
        self,
        engine: Engine,
        intel: IntelHolder,
        scanner: InProcessScanner | None = None,
        *,
        max_attempts: int = store.MAX_ATTEMPTS,
    ) -> None:
        self.engine = engine
        self.intel = intel
        self.scanner = scanner
        self.max_attempts = max_attempts  # of a scan job, judged when this pass queues the running digests
        self._lock = threading.Lock()  # one pass at a time
        self._fingerprint: tuple | None = None
        self._task = PeriodicTask("vigil-contents", self.run_pass, "contents pass")
        self.last_report: ContentPassReport | None = None

    def run_pass(self, *, scan: bool = False, force_reload: bool = False) -> ContentPassReport:
        with self._lock:
            started = time.perf_counter()
            report = ContentPassReport()
            with self.engine.begin() as conn:
                report.queued = store.enqueue(conn, store.running_digests(conn), max_attempts=self.max_attempts)
            if scan and self.scanner is not None:
                self.scanner.enqueue_running()  # the scanner judges which scans its catalogers made stale
                report.scanned = self.scanner.run_pending()
            report.intel_reloaded = self.intel.refresh(force=force_reload)
            report.intel_revision = self.intel.revision
            report.matched = self._match(self.intel.index, self.intel.revision)
            report.findings_synced, report.opened, report.resolved = self._sync_findings(force=report.matched > 0)
            report.seconds = time.perf_counter() - started
            self.last_report = report
            if report.matched or report.opened or report.resolved or report.scanned:
                log.info("contents pass", extra=report.as_dict())
            return report

    def _match(self, index: AdvisoryIndex, revision: str) -> int:
        with self.engine.connect() as conn:
            todo = store.digests_to_match(conn, revision)
        for digest in todo:
            with self.engine.connect() as conn:
                packages = store.stored_packages(conn, digest)
            rows, warnings = vulnerability_rows(index, packages)
            coverage = self.intel.coverage(needed_ecosystems(packages))
            with self.engine.begin() as conn:
                store.replace_vulnerabilities(conn, digest, rows, revision, warnings, coverage=coverage.to_dict())
        return len(todo)

    def _sync_findings(self, force: bool) -> tuple[bool, int, int]:
        """Open, refresh and resolve content findings when what runs or what matched changed."""
        with self.engine.connect() as conn:
            running = running_images(conn)
            matched = {
                d: r for d, r in conn.execute(select(store.image_scans.c.digest, store.image_scans.c.matched_revision))
            }
        fingerprint = (
            tuple(
                sorted(running, key=lambda r: (r.cluster_id, r.image_pk, r.namespace, r.workload_kind, r.workload_name))
            ),
            tuple(sorted(matched.items(), key=lambda kv: kv[0])),
        )
        if not force and fingerprint == self._fingerprint:
            return False, 0, 0
        opened = resolved = 0
        with self.engine.begin() as conn:
            vulns = store.vulnerabilities_of(conn, {r.digest for r in running if r.digest})
            present: set[str] = set()
            live_scopes = {r.scope for r in running}
            for r in running:
                for v in vulns.get(r.digest, ()):
                    obs = observation(r, v)
                    present.add(obs.dedup_key)
                    _, change = finding_store.observe(conn, obs, actor=ACTOR)
                    opened += change in ("opened", "reopened")
            for key, f in finding_store.open_findings(conn, Family.CONTENTS).items():
                if key in present:
                    continue
                reason = (
                    "condition ended: the advisories no longer match the installed version"
                    if f.scope in live_scopes
                    else "the workload no longer runs this image"
                )
                finding_store.set_status(conn, f.id, FindingStatus.RESOLVED, reason, ACTOR)
                resolved += 1
        self._fingerprint = fingerprint
        return True, opened, resolved

    # -- in the background ----------------------------------------------------------------------

    def start(self, tick: float = 2.0, gate: Callable[[], bool] | None = None) -> None:
        self._task.start(tick, gate)

    def stop(self) -> None:
        self._task.stop()


class IntelSyncSchedule:
    """`vigil intel sync` every ``interval`` seconds in a daemon thread (first run at start)."""

    def __init__(self, feeds: list[str], db_path: Path, cache_dir: Path, interval: float) -> None:
        self.feeds = feeds
        self.db_path = db_path
        self.cache_dir = cache_dir
        self.interval = interval
        self.last_report: SyncReport | None = None
        self._task = PeriodicTask("vigil-intel-sync", self.run_once, "advisory sync")

    def run_once(self) -> SyncReport:
        from vigil.intel.sync import sync_feeds

        self.last_report = sync_feeds(self.feeds, self.db_path, self.cache_dir)
        return self.last_report

    def start(self) -> None:
        if self.interval > 0:  # a failed sync is retried at the next interval
            self._task.start(self.interval)

    def stop(self) -> None:
        self._task.stop()
