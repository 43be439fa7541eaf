"""Image contents in the store: the scan queue, file manifests, packages and their vulnerabilities.

Everything is keyed by the running digest (content-addressed), so an image is
scanned once however many containers, workloads or clusters run it.
``image_scans`` doubles as the scanner's job queue: a row is ``pending`` until
a worker claims it (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several workers never take the same job; SQLite's ``BEGIN IMMEDIATE`` already
serializes writers), ``scanning`` while a worker holds it (a lease: a worker
that died is replaced after ``lease`` seconds), then ``done`` or ``failed``
(retried with backoff up to ``MAX_ATTEMPTS``; each claim is an attempt, and a lease that runs out
counts as a failed one, so an image that kills its scanner ends ``failed`` with the reason). A done
scan goes back to ``pending`` when the scanner's catalogers make it stale (``requeue_stale``).

The trust policy decides where a digest is pulled from (``analysis.trust.pull_plan``): through the
mirror rule that applies, and never from a registry the policy does not trust. A digest that only
untrusted registries name is ``not_scanned`` with the reason, both when it is queued and when a job
is claimed (the policy may have changed in between); it is queued again once the policy trusts one.
``StoreScanQueue`` is the scanner's ``ScanQueue`` interface over these functions.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import iso, utcnow
from vigil.model.findings import ADVISORY_SEVERITIES
from vigil.model.image import ImageRef
from vigil.model.scan import CatalogerVersions, QueueCounts, ScanJob, ScanResult, is_stale
from vigil.policy.trust import PullPlan, TrustPolicy, pull_plan
from vigil.service.store.chunks import chunks
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.policy import load_policy
from vigil.service.store.schema import (
    clusters,
    containers,
    image_files,
    image_packages,
    image_scans,
    image_vulnerabilities,
    images,
    nodes,
    pods,
)

log = logging.getLogger(__name__)

SCAN_STATUSES = ("pending", "scanning", "done", "failed", "not_scanned")
NOT_SCANNED = "not_scanned"  # for a policy reason (the error says which): never pulled, never retried by itself
DEFAULT_PLATFORM = "linux/amd64"
MAX_ATTEMPTS = 3  # claims of one job before it stays failed (ContentsSettings.scan_attempts)
RETRY_BASE_S = 60.0
RETRY_MAX_S = 3600.0
DEFAULT_LEASE_S = 900.0
# Paths longer than this are left out of the stored manifest (with a warning): a
# PostgreSQL index entry has a size limit, and no real image path comes close.
MAX_PATH = 2048
MAX_WARNINGS = 200
_CHUNK = 500
NOT_RUNNING = ("terminated",)
# What a stored vulnerability of a package says (the advisory's side), without its package and digest.
VULNERABILITY_COLUMNS = (
    image_vulnerabilities.c.vuln_id,
    image_vulnerabilities.c.key_id,
    image_vulnerabilities.c.advisory_ids,
    image_vulnerabilities.c.aliases,
    image_vulnerabilities.c.severity,
    image_vulnerabilities.c.score,
    image_vulnerabilities.c.severity_source,
    image_vulnerabilities.c.fixed_versions,
    image_vulnerabilities.c.malicious,
    image_vulnerabilities.c.summary,
    image_vulnerabilities.c.links,
)
# Where a package comes from, as a vulnerability of it is shown.
_PACKAGE_ORIGIN = (
    image_packages.c.purl,
    image_packages.c.ecosystem,
    image_packages.c.found_in,
    image_packages.c.source_name,
    image_packages.c.source_version,
)


def package_key(package_type: str, package_name: str, found_in: str) -> str:
    """A package's key inside an image, as a contents finding's subject key starts (``<key>:<advisory>``)."""
    return hashlib.sha256(f"{package_type}\0{package_name}\0{found_in}".encode()).hexdigest()[:16]


def _insert(conn: Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# -- the queue ------------------------------------------------------------------------------------


def running_digests(conn: Connection) -> dict[str, str]:
    """digest -> platform of every image some container runs now.

    The platform is ``linux/<architecture>`` of a node running it (the smallest,
    so the choice is stable when nodes differ), else linux/amd64.
    """
    stmt = (
        select(images.c.digest, func.min(nodes.c.architecture))
        .select_from(containers)
        .join(images, images.c.id == containers.c.image_pk)
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .outerjoin(nodes, (nodes.c.cluster_id == pods.c.cluster_id) & (nodes.c.name == pods.c.node_name))
        .where(containers.c.state.not_in(NOT_RUNNING), images.c.digest != "")
        .group_by(images.c.digest)
    )
    return {digest: f"linux/{arch}" if arch else DEFAULT_PLATFORM for digest, arch in conn.execute(stmt)}


def pull_plans(conn: Connection, policy: TrustPolicy, digests: Iterable[str]) -> dict[str, PullPlan]:
    """The pull plan of each digest, from every reference a container in some cluster ran it under.

    A digest no container names any more (its pods are gone) is judged by its image rows under the
    global rules alone.
    """
    named: dict[str, list[tuple[ImageRef, tuple[str, ...]]]] = {}
    wanted = sorted(set(digests))
    for chunk in chunks(wanted):
        rows = conn.execute(
            select(
                images.c.digest, images.c.registry, images.c.repository, images.c.tag, clusters.c.id, clusters.c.name
            )
            .select_from(images)
            .outerjoin(containers, containers.c.image_pk == images.c.id)
            .outerjoin(clusters, clusters.c.id == containers.c.cluster_id)
            .where(images.c.digest.in_(chunk), images.c.registry != "")
            .distinct()
        )
        for digest, registry, repository, tag, cluster_id, cluster_name in rows:
            keys = (cluster_id, cluster_name) if cluster_id is not None else ()
            named.setdefault(digest, []).append((ImageRef(registry, repository, tag or None, digest), keys))
    return {d: pull_plan(policy, sorted(named.get(d, []), key=str)) for d in wanted}


def _hold_untrusted(conn: Connection, plans: dict[str, PullPlan], now: datetime) -> tuple[set[str], int]:
    """Mark the digests only untrusted registries name ``not_scanned`` (unless scanned or scanning), and
    queue again the ``not_scanned`` ones the policy now lets us pull. (held digests, requeued count)"""
    held = {d for d, plan in plans.items() if plan.blocked}
    for digest in sorted(held):
        conn.execute(
            update(image_scans)
            .where(image_scans.c.digest == digest, image_scans.c.status.in_(("pending", "failed", NOT_SCANNED)))
            .values(status=NOT_SCANNED, error=plans[digest].refusal(), worker=None, next_attempt_at=None)
        )
    allowed = sorted(d for d in plans if d not in held)
    released = 0
    for chunk in chunks(allowed):
        released += (
            conn.execute(
                update(image_scans)
                .where(image_scans.c.digest.in_(chunk), image_scans.c.status == NOT_SCANNED)
                .values(status="pending", attempts=0, error=None, enqueued_at=now)
            ).rowcount
            or 0
        )
    return held, released


def stopped_while_scanning(attempt: int, max_attempts: int) -> str:
    """The error of a job whose worker's lease ran out (it died, or the image killed it)."""
    return f"the scanner stopped while scanning (attempt {attempt} of {max_attempts})"


def enqueue(
    conn: Connection,
    wanted: dict[str, str],
    *,
    lease: float = DEFAULT_LEASE_S,
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
) -> QueueCounts:
    """Queue every wanted digest not scanned yet; requeue failed scans whose backoff has
    passed and scans whose worker's lease ran out (``failed`` instead once the lease-out was
    its ``max_attempts``-th attempt). A digest the trust policy lets nobody pull is ``not_scanned``
    instead (``untrusted`` counts them). Returns counts of each."""
    now = now or utcnow()
    known: set[str] = set()
    digests = sorted(wanted)
    for chunk in chunks(digests):
        known.update(d for (d,) in conn.execute(select(image_scans.c.digest).where(image_scans.c.digest.in_(chunk))))
    plans = pull_plans(conn, load_policy(conn), digests)
    held, released = _hold_untrusted(conn, plans, now)
    rows: list[dict[str, Any]] = [
        dict(
            digest=d,
            platform=wanted[d],
            attempts=0,
            enqueued_at=now,
            warnings=[],
            match_warnings=[],
            **(dict(status=NOT_SCANNED, error=plans[d].refusal()) if d in held else dict(status="pending", error=None)),
        )
        for d in digests
        if d not in known
    ]
    for batch in chunks(rows):
        conn.execute(_insert(conn)(image_scans).on_conflict_do_nothing(), batch)
    retried = conn.execute(
        update(image_scans)
        .where(
            image_scans.c.status == "failed",
            image_scans.c.attempts < max_attempts,
            image_scans.c.next_attempt_at <= now,
        )
        .values(status="pending", enqueued_at=now)
    ).rowcount
    expired = conn.execute(
        select(image_scans.c.digest, image_scans.c.worker, image_scans.c.started_at, image_scans.c.attempts).where(
            image_scans.c.status == "scanning", image_scans.c.started_at < now - timedelta(seconds=lease)
        )
    ).all()
    stale = given_up = 0
    for row in expired:
        error = stopped_while_scanning(row.attempts, max_attempts)
        final = row.attempts >= max_attempts
        values: dict[str, Any] = (
            dict(status="failed", error=error, finished_at=now, next_attempt_at=None)
            if final
            else dict(status="pending", error=error, enqueued_at=now)
        )
        changed = conn.execute(
            update(image_scans)
            .where(  # unchanged since read: another enqueue or the worker itself may have moved it
                image_scans.c.digest == row.digest,
                image_scans.c.status == "scanning",
                image_scans.c.worker == row.worker,
                image_scans.c.started_at == row.started_at,
            )
            .values(worker=None, **values)
        ).rowcount
        if changed and final:
            given_up += 1
        elif changed:
            stale += 1
    if stale:
        log.warning("scan leases expired; jobs requeued", extra={"jobs": stale})
    if given_up:
        log.warning("scan leases expired on their last attempt; jobs failed", extra={"jobs": given_up})
    return {
        "queued": sum(r["status"] == "pending" for r in rows) + released,
        "retried": retried or 0,
        "requeued": stale,
        "untrusted": len(held),
    }


def requeue_stale(
    conn: Connection, wanted: Iterable[str], catalogers: CatalogerVersions, now: datetime | None = None
) -> list[str]:
    """Queue again the done scans among ``wanted`` that are stale for ``catalogers``; their digests.

    The stored contents stay until the new scan replaces them (findings keep holding meanwhile).
    """
    now = now or utcnow()
    digests = sorted(set(wanted))
    stale: list[str] = []
    for chunk in chunks(digests):
        rows = conn.execute(
            select(image_scans.c.digest, image_scans.c.catalogers).where(
                image_scans.c.digest.in_(chunk), image_scans.c.status == "done"
            )
        )
        stale.extend(d for d, recorded in rows if is_stale(recorded, catalogers))
    for chunk in chunks(stale):
        conn.execute(
            update(image_scans)
            .where(image_scans.c.digest.in_(chunk), image_scans.c.status == "done")
            .values(status="pending", attempts=0, worker=None, error=None, enqueued_at=now)
        )
    if stale:
        log.info("catalogers changed; stored scans queued again", extra={"jobs": len(stale)})
    return sorted(stale)


def claim(conn: Connection, worker: str, now: datetime | None = None) -> ScanJob | None:
    """Take the oldest pending scan for ``worker``; None when there is none.

    Run it in its own short transaction: on PostgreSQL the row lock taken by
    ``FOR UPDATE SKIP LOCKED`` makes concurrent workers skip it; on SQLite the
    transaction began with BEGIN IMMEDIATE, so claims are serialized. The job's
    sources are where the trust policy lets the scanner pull from, as it stands now;
    a pending digest it lets nobody pull becomes ``not_scanned`` and is skipped.
    """
    now = now or utcnow()
    stmt = (
        select(image_scans.c.digest, image_scans.c.platform, image_scans.c.attempts)
        .where(image_scans.c.status == "pending")
        .order_by(image_scans.c.enqueued_at, image_scans.c.digest)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    policy = load_policy(conn)
    while True:
        row = conn.execute(stmt).first()
        if row is None:
            return None
        plan = pull_plans(conn, policy, [row.digest])[row.digest]
        if not plan.blocked:
            break
        conn.execute(
            update(image_scans)
            .where(image_scans.c.digest == row.digest)
            .values(status=NOT_SCANNED, error=plan.refusal(), next_attempt_at=None)
        )
    conn.execute(
        update(image_scans)
        .where(image_scans.c.digest == row.digest)
        .values(status="scanning", worker=worker, started_at=now, attempts=row.attempts + 1, error=None)
    )
    return ScanJob(row.digest, row.platform, row.attempts + 1, worker, plan.sources)


def _still_mine(conn: Connection, job: ScanJob) -> bool:
    row = conn.execute(
        select(image_scans.c.status, image_scans.c.worker).where(image_scans.c.digest == job.digest).with_for_update()
    ).first()
    if row is None or row.status != "scanning" or row.worker != job.worker:
        log.warning(
            "scan result discarded: the job is no longer held by this worker",
            extra={"digest": job.digest, "worker": job.worker},
        )
        return False
    return True


def record_failure(
    conn: Connection, job: ScanJob, error: str, now: datetime | None = None, *, max_attempts: int = MAX_ATTEMPTS
) -> bool:
    """Mark the scan failed with ``error``: retried after a backoff, or never after ``max_attempts``."""
    now = now or utcnow()
    if not _still_mine(conn, job):
        return False
    wait = min(RETRY_BASE_S * 2 ** (job.attempts - 1), RETRY_MAX_S)
    next_attempt = now + timedelta(seconds=wait) if job.attempts < max_attempts else None
    conn.execute(
        update(image_scans)
        .where(image_scans.c.digest == job.digest)
        .values(
            status="failed",
            error=error[:4000],
            finished_at=now,
            next_attempt_at=next_attempt,
            worker=None,
        )
    )
    return True


def record_result(conn: Connection, job: ScanJob, result: ScanResult, now: datetime | None = None) -> bool:
    """Replace the digest's contents with ``result`` and mark the scan done (to be matched)."""
    now = now or utcnow()
    if not _still_mine(conn, job):
        return False
    warnings = list(result.warnings)
    files = []
    for f in result.files:
        if len(f["path"]) > MAX_PATH:
            warnings.append(
                f"{f['path'][:120]}...: path longer than {MAX_PATH} characters, left out of the stored manifest"
            )
            continue
        files.append(dict(f, digest=job.digest))
    for table in (image_vulnerabilities, image_packages, image_files):
        conn.execute(delete(table).where(table.c.digest == job.digest))
    for chunk in chunks(files, _CHUNK * 4):
        conn.execute(image_files.insert(), chunk)
    packages = [dict(p, digest=job.digest) for p in result.packages]
    for chunk in chunks(packages):
        conn.execute(image_packages.insert(), chunk)
    shown = warnings[:MAX_WARNINGS]
    if len(warnings) > MAX_WARNINGS:
        shown.append(f"... and {len(warnings) - MAX_WARNINGS} more warnings (in the scanner's log)")
    conn.execute(
        update(image_scans)
        .where(image_scans.c.digest == job.digest)
        .values(
            status="done",
            error=None,
            finished_at=now,
            next_attempt_at=None,
            worker=None,
            manifest_digest=result.manifest_digest,
            source=result.source[:1024],
            platform=result.platform[:64],
            os=result.os,
            file_count=len(files),
            package_count=len(packages),
            warnings=shown,
            incomplete=result.incomplete,
            unread_files=list(result.unread_files[:MAX_WARNINGS]),
            catalogers=dict(result.catalogers),
            matched_revision=None,
            matched_at=None,
            match_warnings=[],
        )
    )
    return True


class StoreScanQueue:
    """The scanner's ``ScanQueue`` on this store: each call is one short transaction."""

    def __init__(self, engine: Engine, *, lease: float = DEFAULT_LEASE_S, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.engine = engine
        self.lease = lease
        self.max_attempts = max_attempts

    def enqueue_running(self, catalogers: CatalogerVersions) -> QueueCounts:
        with self.engine.begin() as conn:
            wanted = running_digests(conn)
            counts = enqueue(conn, wanted, lease=self.lease, max_attempts=self.max_attempts)
            counts["recatalogued"] = len(requeue_stale(conn, wanted, catalogers))
            return counts

    def claim(self, worker: str) -> ScanJob | None:
        with self.engine.begin() as conn:
            return claim(conn, worker)

    def store_contents(self, job: ScanJob, result: ScanResult) -> bool:
        with self.engine.begin() as conn:
            return record_result(conn, job, result)

    def fail(self, job: ScanJob, error: str) -> bool:
        with self.engine.begin() as conn:
            return record_failure(conn, job, error, max_attempts=self.max_attempts)


# -- matching -------------------------------------------------------------------------------------


def digests_to_match(conn: Connection, revision: str) -> list[str]:
    """Scanned digests whose packages were not matched against advisory revision ``revision``, or were
    matched before their advisory coverage was recorded."""
    stmt = select(image_scans.c.digest).where(
        image_scans.c.status == "done",
        or_(
            image_scans.c.matched_revision.is_(None),
            image_scans.c.matched_revision != revision,
            image_scans.c.coverage.is_(None),
        ),
    )
    return sorted(d for (d,) in conn.execute(stmt))


def stored_packages(conn: Connection, digest: str) -> Sequence[Row[*tuple[Any, ...]]]:
    return conn.execute(
        select(image_packages).where(image_packages.c.digest == digest).order_by(image_packages.c.id)
    ).all()


def replace_vulnerabilities(
    conn: Connection,
    digest: str,
    rows: list[dict],
    revision: str,
    warnings: list[str],
    now: datetime | None = None,
    coverage: dict | None = None,
) -> None:
    """The digest's vulnerabilities as matched against ``revision``, with that match's advisory
    ``coverage`` (``Coverage.to_dict()``)."""
    conn.execute(delete(image_vulnerabilities).where(image_vulnerabilities.c.digest == digest))
    rows = [dict(r, digest=digest) for r in rows]
    for chunk in chunks(rows):
        conn.execute(image_vulnerabilities.insert(), chunk)
    conn.execute(
        update(image_scans)
        .where(image_scans.c.digest == digest)
        .values(
            matched_revision=revision,
            matched_at=now or utcnow(),
            match_warnings=warnings[:MAX_WARNINGS],
            # SQL NULL (not JSON null), so the digest is matched again for its coverage
            coverage=coverage if coverage is not None else null(),
        )
    )


@dataclass(frozen=True, slots=True)
class StoredVulnerability:
    """One vulnerability of one package of one digest, as findings need it."""

    digest: str
    package_type: str
    package_name: str
    package_version: str
    purl: str
    ecosystem: str | None
    found_in: str
    source_name: str | None
    source_version: str | None
    vuln_id: str
    key_id: str
    advisory_ids: list[str]
    aliases: list[str]
    severity: str
    score: float | None
    severity_source: str | None
    fixed_versions: list[str]
    malicious: bool
    summary: str
    links: list[str]


def vulnerabilities_of(conn: Connection, digests: Iterable[str]) -> dict[str, list[StoredVulnerability]]:
    digests = sorted(set(digests))
    out: dict[str, list[StoredVulnerability]] = {}
    v, p = image_vulnerabilities, image_packages
    for chunk in chunks(digests):
        stmt = (
            select(
                v.c.digest,
                p.c.type.label("package_type"),
                p.c.name.label("package_name"),
                p.c.version.label("package_version"),
                *_PACKAGE_ORIGIN,
                *VULNERABILITY_COLUMNS,
            )
            .join(p, p.c.id == v.c.package_id)
            .where(v.c.digest.in_(chunk))
            .order_by(v.c.digest, v.c.id)
        )
        for row in conn.execute(stmt):
            out.setdefault(row.digest, []).append(StoredVulnerability(**row._mapping))
    return out


# -- reading, for the API -------------------------------------------------------------------------


def scan_status(conn: Connection, digest: str | None) -> dict:
    """The scan of a digest for the API; an image without a digest cannot be scanned."""
    if not digest:
        return {
            "status": "failed",
            "error": "the runtime reported no image digest for this image; nothing can be pulled",
        }
    r = conn.execute(select(image_scans).where(image_scans.c.digest == digest)).first()
    if r is None:
        # Not queued yet: the next scanner pass queues every running digest.
        return {"status": "pending", "error": None, "digest": digest, "enqueued_at": None}
    vulns: dict[str, int] = dict(
        conn.execute(
            select(image_vulnerabilities.c.severity, func.count())
            .where(image_vulnerabilities.c.digest == digest)
            .group_by(image_vulnerabilities.c.severity)
        ).all()
    )
    return {
        "status": r.status,
        "error": r.error,
        "digest": r.digest,
        "platform": r.platform,
        "manifest_digest": r.manifest_digest,
        "source": r.source,
        "os": r.os,
        "attempts": r.attempts,
        "enqueued_at": iso(r.enqueued_at),
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "next_attempt_at": iso(r.next_attempt_at) if r.status == "failed" else None,
        "files": r.file_count,
        "packages": r.package_count,
        "warnings": r.warnings,
        "incomplete": r.incomplete,
        "unread_files": r.unread_files,
        "matched_revision": r.matched_revision,
        "matched_at": iso(r.matched_at),
        "match_warnings": r.match_warnings,
        "coverage": r.coverage,
        "vulnerabilities": {s.value: int(vulns.get(s, 0)) for s in ADVISORY_SEVERITIES},
    }


def _package_dict(r) -> dict:
    return {
        "id": r.id,
        "type": r.type,
        "name": r.name,
        "version": r.version,
        "purl": r.purl,
        "ecosystem": r.ecosystem,
        "cataloger": r.cataloger,
        "found_in": r.found_in,
        "source_name": r.source_name,
        "source_version": r.source_version,
        "arch": r.arch,
        "files": r.files,
        "metadata": r.details,
    }


def list_packages(conn: Connection, digest: str, type_: str | None, name: str | None, after: str | None, limit: int):
    stmt = select(image_packages).where(image_packages.c.digest == digest)
    if type_:
        stmt = stmt.where(image_packages.c.type == type_)
    if name:
        stmt = stmt.where(image_packages.c.name == name)
    rows, nxt = keyset_rows(conn, stmt, Sort(((image_packages.c.id, "int"),)), after, limit)
    return [_package_dict(r) for r in rows], nxt


def list_files(
    conn: Connection,
    digest: str,
    prefix: str | None,
    sha256: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
):
    stmt = select(image_files).where(image_files.c.digest == digest)
    if prefix:
        stmt = stmt.where(image_files.c.path.startswith(prefix, autoescape=True))
    if sha256:
        stmt = stmt.where(image_files.c.sha256 == sha256)
    if kind:
        stmt = stmt.where(image_files.c.kind == kind)
    rows, nxt = keyset_rows(conn, stmt, Sort(((image_files.c.path, "str"),)), after, limit)
    items = []
    for r in rows:
        if r.kind == "symlink":
            items.append({"path": r.path, "kind": "symlink", "target": r.target})
        else:
            items.append(
                {
                    "path": r.path,
                    "kind": "file",
                    "sha256": r.sha256,
                    "size": r.size,
                    "mode": f"{r.mode:04o}",
                    "executable": bool(r.mode & 0o111),
                }
            )
    return items, nxt


def list_vulnerabilities(
    conn: Connection, digest: str, severities: Sequence[str], malicious: bool | None, after: str | None, limit: int
):
    v, p = image_vulnerabilities, image_packages
    stmt = (
        select(
            v,
            p.c.type,
            p.c.name,
            p.c.version,
            *_PACKAGE_ORIGIN,
        )
        .join(p, p.c.id == v.c.package_id)
        .where(v.c.digest == digest)
    )
    if severities:
        stmt = stmt.where(v.c.severity.in_(list(severities)))
    if malicious is not None:
        stmt = stmt.where(v.c.malicious == malicious)
    rows, nxt = keyset_rows(conn, stmt, Sort(((v.c.id, "int"),)), after, limit)
    items = [
        {
            "id": r.vuln_id,
            "advisory_ids": r.advisory_ids,
            "aliases": r.aliases,
            "severity": {"level": r.severity, "score": r.score, "source": r.severity_source},
            "malicious": r.malicious,
            "fixed_versions": r.fixed_versions,
            "summary": r.summary,
            "links": r.links,
            "package": {
                "id": r.package_id,
                "type": r.type,
                "name": r.name,
                "version": r.version,
                "purl": r.purl,
                "ecosystem": r.ecosystem,
                "found_in": r.found_in,
                "source_name": r.source_name,
                "source_version": r.source_version,
            },
        }
        for r in rows
    ]
    return items, nxt


def scan_counts(conn: Connection) -> dict[str, int]:
    counts: dict[str, int] = dict(
        conn.execute(select(image_scans.c.status, func.count()).group_by(image_scans.c.status)).all()
    )
    return {s: int(counts.get(s, 0)) for s in SCAN_STATUSES}


def scan_coverage(conn: Connection, digests: Iterable[str]) -> dict[str, dict | None]:
    """digest -> the advisory coverage of its last match (None: not matched since it was recorded)."""
    out: dict[str, dict | None] = {}
    for chunk in chunks(sorted({d for d in digests if d})):
        stmt = select(image_scans.c.digest, image_scans.c.coverage).where(image_scans.c.digest.in_(chunk))
        out.update({d: c for d, c in conn.execute(stmt)})
    return out
