"""The composition root of the service's background work: every worker built in one place,
started in order and stopped in the reverse order through one lifespan.

Order matters at start: the trust policy file is applied before the integrity evaluator's first
pass; the scanner starts before the matcher that reads what it stored; alert delivery starts last,
so it tails findings that the other workers already write. Stopping runs the other way, so no
worker outlives one whose results it consumes.

On PostgreSQL several service processes (replicas) may share the store: the jobs that must run in
one place at a time start with a gate on their lease (``jobs/leases.py``), so each runs on one
replica and moves to another within a lease period when that one dies. The scanner (its queue's
claims), alert delivery (its per-output cursor leases) and the advisory sync (each replica keeps its
own advisory database) run on every replica. On SQLite there is one process and no lease.

Only this module and ``vigil scanner``'s command know both the scanner unit and the service's
store (the scanner's queue interface is implemented by ``store.contents``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from vigil.catalog.limits import ScanLimits
from vigil.registry import RegistryClient, RegistryConfig
from vigil.scanner.isolated import ClientSource
from vigil.scanner.worker import ScanWorker
from vigil.service.jobs.alerts.dispatcher import Dispatcher
from vigil.service.jobs.contents import IntelHolder, IntelSyncSchedule, VulnerabilityAnalyzer
from vigil.service.jobs.integrity import IntegrityEvaluator
from vigil.service.jobs.leases import JobLeases, replica_id
from vigil.service.jobs.retention import RetentionJob
from vigil.service.jobs.runtime import RuntimeAnalyzer
from vigil.service.jobs.signatures import SignatureVerifier
from vigil.service.jobs.trust_file import apply_policy_file
from vigil.service.jobs.wakeups import FindingsSignal, NotificationListener
from vigil.service.settings import Settings
from vigil.service.store.contents import MAX_ATTEMPTS, StoreScanQueue
from vigil.service.store.notify import FINDINGS_CHANGED, RUNTIME_QUEUED

# Tag answers expire a little before the next reverify, so each reverify sees the registry
# as it is, while images evaluated in between share the answers (one request per tag per interval).
TAG_TTL_FRACTION = 0.9


@dataclass
class Workers:
    """The service's background workers. Tests may replace one before the app starts."""

    integrity: IntegrityEvaluator
    contents: VulnerabilityAnalyzer
    intel_sync: IntelSyncSchedule
    runtime: RuntimeAnalyzer
    alerts: Dispatcher
    signatures: SignatureVerifier
    retention: RetentionJob
    # The job leases of this replica on PostgreSQL; None on SQLite, where one process runs everything.
    leases: JobLeases | None = None
    # Fired when findings changed here; the findings streams wait on it between their polls.
    findings: FindingsSignal = field(default_factory=FindingsSignal)
    # On PostgreSQL, the other replicas' runtime batches and findings wake this one's (jobs/wakeups.py).
    notifications: NotificationListener | None = None


def make_evaluator(settings: Settings, engine: Engine) -> IntegrityEvaluator:
    config = RegistryConfig.load(settings.registry_config)
    reverify = settings.integrity.reverify_interval
    client = RegistryClient(config, tag_ttl=reverify * TAG_TTL_FRACTION)
    return IntegrityEvaluator(
        engine, client, reverify_interval=reverify, registry_concurrency=settings.integrity.registry_concurrency
    )


def make_signatures(settings: Settings, engine: Engine) -> SignatureVerifier:
    # A client of its own: signature requests neither share nor count against integrity's.
    client = RegistryClient(RegistryConfig.load(settings.registry_config))
    root = settings.integrity.sigstore_trusted_root
    return SignatureVerifier(
        engine,
        client,
        reverify_interval=settings.integrity.reverify_interval,
        trusted_root=root.read_bytes() if root is not None else None,
    )


def scan_worker(
    engine: Engine,
    client: RegistryClient,
    max_attempts: int = MAX_ATTEMPTS,
    limits: ScanLimits | None = None,
    *,
    isolated: ClientSource | None = None,
) -> ScanWorker:
    """A scanner taking its jobs from this store's queue (``isolated``: each image in a child process)."""
    return ScanWorker(StoreScanQueue(engine, max_attempts=max_attempts), client, limits=limits, isolated=isolated)


def make_contents(settings: Settings, engine: Engine) -> VulnerabilityAnalyzer:
    scanner = None
    if settings.contents.scanner_inprocess:
        # VIGIL_SCAN_* read here, when the service starts: a bad value stops it with the rule.
        limits = ScanLimits.from_env()
        client = RegistryClient(
            RegistryConfig.load(settings.registry_config), max_manifest_bytes=limits.max_manifest_bytes
        )
        # In the service's process, each image is pulled and cataloged in a child with its own memory limit.
        source = ClientSource(settings.registry_config, max_manifest_bytes=limits.max_manifest_bytes)
        scanner = scan_worker(engine, client, settings.contents.scan_attempts, limits, isolated=source)
    assert settings.intel_db is not None  # Settings fills it in
    return VulnerabilityAnalyzer(
        engine, IntelHolder(settings.intel_db), scanner, max_attempts=settings.contents.scan_attempts
    )


def make_intel_sync(settings: Settings) -> IntelSyncSchedule:
    from vigil.intel.sync import default_feeds

    assert settings.intel_db is not None
    db = Path(settings.intel_db)
    return IntelSyncSchedule(
        list(settings.contents.intel_feeds or default_feeds()),
        db,
        db.parent / "feeds",
        settings.contents.intel_sync_interval,
    )


def build_workers(settings: Settings, engine: Engine) -> Workers:
    """Apply the trust policy file (PolicyFileError names the file and field), then build every worker."""
    if settings.integrity.trust_file is not None:
        apply_policy_file(settings.integrity.trust_file, engine)
    findings = FindingsSignal()
    runtime = RuntimeAnalyzer(
        engine,
        watch_period=settings.runtime.watch_period,
        label_interval=settings.runtime.label_interval,
        on_findings=findings.fire,
    )
    workers = Workers(
        integrity=make_evaluator(settings, engine),
        contents=make_contents(settings, engine),
        intel_sync=make_intel_sync(settings),
        runtime=runtime,
        alerts=Dispatcher.from_settings(engine, settings.alerts, settings.replicas.lease_seconds),
        signatures=make_signatures(settings, engine),
        retention=RetentionJob(engine, settings.retention),
        leases=make_leases(settings, engine),
        findings=findings,
    )
    workers.notifications = make_notifications(engine, workers)
    return workers


def make_notifications(engine: Engine, workers: Workers) -> NotificationListener | None:
    if engine.dialect.name != "postgresql":
        return None
    # Each wake goes to the worker current when the notification comes (a test may replace one
    # before the app starts).
    return NotificationListener(
        engine, {RUNTIME_QUEUED: lambda: workers.runtime.wake(), FINDINGS_CHANGED: lambda: workers.findings.fire()}
    )


def make_leases(settings: Settings, engine: Engine) -> JobLeases | None:
    if engine.dialect.name != "postgresql":
        return None
    return JobLeases(engine, replica_id(), settings.replicas.lease_seconds)


def _gate(workers: Workers, job: str):
    return None if workers.leases is None else workers.leases.gate(job)


def start(workers: Workers, settings: Settings) -> None:
    """Start what the settings run in the background, in dependency order."""
    if workers.leases is not None:
        workers.leases.start()
    if workers.notifications is not None:
        workers.notifications.start()
    if settings.integrity.background:
        workers.integrity.start(settings.integrity.tick, _gate(workers, "integrity"))
        workers.signatures.start(settings.integrity.tick, _gate(workers, "signatures"))
    if settings.contents.background:
        if workers.contents.scanner is not None:
            workers.contents.scanner.start(settings.contents.tick)
        workers.contents.start(settings.contents.tick, _gate(workers, "contents"))
        workers.intel_sync.start()
    if settings.runtime.background:
        workers.runtime.start(settings.runtime.tick, _gate(workers, "runtime"))
    if settings.alerts.background:
        workers.alerts.start(settings.alerts.tick)
    if settings.retention.background:
        workers.retention.start(gate=_gate(workers, "retention"))


def stop(workers: Workers) -> None:
    """Stop every worker (a worker never started stops at once), in the reverse order, and close clients;
    then hand this replica's job leases back."""
    workers.retention.stop()
    workers.alerts.stop()
    workers.runtime.stop()
    workers.intel_sync.stop()
    workers.contents.stop()
    if workers.contents.scanner is not None:
        workers.contents.scanner.stop()
        workers.contents.scanner.client.close()
    workers.signatures.stop()
    workers.signatures.client.close()
    workers.integrity.stop()
    workers.integrity.client.close()
    if workers.notifications is not None:
        workers.notifications.stop()
    if workers.leases is not None:
        workers.leases.stop()
