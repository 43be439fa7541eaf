"""Admission control in the store: the webhooks' decisions (each raising its finding), and the per-digest and
per-tag facts the service feeds them.

A decision is kept once per (cluster, request uid), so a batch sent again changes nothing. Every denial,
warning, audit and break-glass use that was not a dry run opens (or refreshes) a finding of the admission
family, one per object, kind of outcome and set of violations: a workload retried by its controller a hundred
times is one finding, alerted once, whose evidence is the latest decision.

The facts are what the service's own analyses learnt: the trusted registry's answers (integrity verdicts) and
the image scans, less the contents findings an admin suppressed. Only what a webhook decides from travels, and
within bounds (``MAX_FEED_*``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc, utcnow
from vigil.model.findings import Family, FindingStatus, FindingType, Severity, severity_rank
from vigil.model.image import digest_error
from vigil.policy.signature_rules import material
from vigil.service.store import findings as finding_store
from vigil.service.store import signatures as signature_store
from vigil.service.store.chunks import chunks
from vigil.service.store.contents import package_key
from vigil.service.store.schema import (
    admission_decisions,
    containers,
    findings,
    image_integrity,
    image_packages,
    image_scans,
    image_vulnerabilities,
    images,
)
from vigil.wire.admission import (
    MAX_IMAGES,
    AdmissionDecisionRecord,
    DigestFacts,
    SignatureCheckFact,
    SignatureFacts,
    TagFacts,
    VulnerabilityFact,
)

DEDUP_PREFIX = "admission:"
ACTOR = "admission"
# The outcomes that are findings; allowed and exempt decisions are only recorded.
FINDING_OF_OUTCOME = {
    "denied": FindingType.ADMISSION_DENIED,
    "warned": FindingType.ADMISSION_WARNED,
    "audited": FindingType.ADMISSION_AUDITED,
    "break_glass": FindingType.BREAK_GLASS_USED,
}
# What one feed carries at most: a webhook's cache stays small, and a snapshot line stays a few MB.
# Digests beyond the bound are the ones least likely asked (not running in the feed's cluster); vulnerabilities
# beyond it per digest are the least severe, which a rule at a higher severity does not need.
MAX_FEED_DIGESTS = 5000
MAX_FEED_TAGS = 5000
MAX_FEED_VULNERABILITIES = 1000
# ... and over all digests, so a snapshot line stays well below what a webhook reads (~80 bytes each): with
# many scanned digests each keeps its most severe ones, at least MIN_FEED_VULNERABILITIES.
MAX_FEED_VULNERABILITIES_TOTAL = 250_000
MIN_FEED_VULNERABILITIES = 20
NOT_RUNNING = ("terminated",)


def _insert(conn: Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# -- decisions ------------------------------------------------------------------------------------


def _violations_key(record: AdmissionDecisionRecord) -> str:
    parts = sorted({f"{v.policy}\0{v.rule}\0{v.image}" for v in record.violations})
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def observation(cluster_id: str, record: AdmissionDecisionRecord) -> finding_store.Observation | None:
    """The finding a decision raises; None for an allowed or exempt one, or a dry run (nothing was admitted)."""
    kind = FINDING_OF_OUTCOME.get(record.outcome)
    if kind is None or record.dry_run:
        return None
    obj = f"{record.kind}/{record.name}"
    key = _violations_key(record)
    if record.outcome == "break_glass":
        what = f"break-glass by {record.user}: {record.break_glass or ''}"
    elif record.violations:
        what = record.violations[0].message
        if len(record.violations) > 1:
            what += f" (and {len(record.violations) - 1} more)"
    else:
        what = str(record.outcome)
    return finding_store.Observation(
        dedup_key=f"{DEDUP_PREFIX}{cluster_id}:{record.namespace}:{obj}:{kind}:{key}",
        type=kind,
        severity=kind.severity(),
        subject=f"{record.namespace}/{obj}: {what}"[:1024],
        evidence=record.model_dump(mode="json"),
        cluster_id=cluster_id,
        namespace=record.namespace,
        workload_kind=record.kind,
        workload_name=record.name,
        subject_key=f"{obj}:{key}",
    )


def record_decisions(conn: Connection, cluster_id: str, decisions: Sequence[AdmissionDecisionRecord]) -> int:
    """Keep the decisions not kept yet (by request uid) and raise their findings; how many were new."""
    insert = _insert(conn)
    now = utcnow()
    new = 0
    for record in decisions:
        kept = conn.execute(
            insert(admission_decisions)
            .values(
                cluster_id=cluster_id,
                uid=record.uid,
                at=record.at,
                operation=record.operation,
                kind=record.kind,
                namespace=record.namespace,
                name=record.name,
                user=record.user,
                outcome=record.outcome,
                record=record.model_dump(mode="json"),
                received_at=now,
            )
            .on_conflict_do_nothing()
            .returning(admission_decisions.c.id)
        ).first()
        if kept is None:
            continue
        new += 1
        obs = observation(cluster_id, record)
        if obs is not None:
            finding_store.observe(conn, obs, actor=ACTOR)
    return new


@dataclass(frozen=True)
class StoredDecision:
    id: int
    cluster_id: str
    record: AdmissionDecisionRecord
    received_at: datetime


def list_decisions(
    conn: Connection,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[StoredDecision]:
    """Decisions newest first (by arrival), filtered; ``before_id`` pages on from the last one seen."""
    t = admission_decisions.c
    stmt = select(t.id, t.cluster_id, t.record, t.received_at)
    if cluster:
        stmt = stmt.where(t.cluster_id == cluster)
    if namespace:
        stmt = stmt.where(t.namespace == namespace)
    if outcome:
        stmt = stmt.where(t.outcome == outcome)
    if before_id is not None:
        stmt = stmt.where(t.id < before_id)
    rows = conn.execute(stmt.order_by(t.id.desc()).limit(limit)).all()
    return [
        StoredDecision(int(r.id), r.cluster_id, AdmissionDecisionRecord.model_validate(r.record), as_utc(r.received_at))
        for r in rows
    ]


# -- feed facts -----------------------------------------------------------------------------------


def _known_digests(conn: Connection, cluster_id: str) -> list[str]:
    """Digests the service knows, those the cluster runs first, then those other clusters run, then the rest
    (integrity verdicts and scans of images no longer running)."""
    running = (
        select(images.c.digest, containers.c.cluster_id)
        .join(images, images.c.id == containers.c.image_pk)
        .where(containers.c.state.not_in(NOT_RUNNING), images.c.digest != "")
        .distinct()
    )
    ours: set[str] = set()
    theirs: set[str] = set()
    for digest, cid in conn.execute(running):
        (ours if cid == cluster_id else theirs).add(digest)
    rest = {
        d
        for (d,) in conn.execute(
            select(images.c.digest).join(image_integrity, image_integrity.c.image_pk == images.c.id).distinct()
        )
    }
    rest |= {d for (d,) in conn.execute(select(image_scans.c.digest).where(image_scans.c.status == "done"))}
    ordered = sorted(ours) + sorted(theirs - ours) + sorted(rest - ours - theirs)
    return [d for d in ordered if d and digest_error(d) is None][:MAX_FEED_DIGESTS]


def _present(status: str, verdict: str, evidence: dict[str, Any]) -> bool:
    """Whether an integrity verdict says the trusted registry holds the running digest."""
    if status == "verified":
        return True
    if status != "violation":
        return False
    kinds = set(verdict.split(","))
    if FindingType.TAG_MOVED in kinds:
        return True
    return FindingType.ARTIFACT_MISSING in kinds and evidence.get("runtime_digest_present") is True


def _integrity_rows(conn: Connection):
    return conn.execute(
        select(
            images.c.digest,
            image_integrity.c.status,
            image_integrity.c.verdict,
            image_integrity.c.evidence,
            image_integrity.c.registry_digest,
            image_integrity.c.checked_at,
        ).join(images, images.c.id == image_integrity.c.image_pk)
    ).all()


def _accepted(conn: Connection, digests: Sequence[str]) -> set[tuple[str, str]]:
    """(digest, subject key) of the contents findings an admin suppressed wherever that digest runs: an
    accepted risk (or a false positive) is not held against the image at admission either."""
    f = findings.c
    status: dict[tuple[str, str], set[str]] = {}
    for chunk in chunks(list(digests)):
        stmt = (
            select(images.c.digest, f.subject_key, f.status)
            .join(images, images.c.id == f.image_pk)
            .where(
                f.family == Family.CONTENTS,
                f.status.in_((FindingStatus.OPEN, FindingStatus.SUPPRESSED)),
                images.c.digest.in_(chunk),
            )
        )
        for digest, key, state in conn.execute(stmt):
            status.setdefault((digest, key), set()).add(state)
    return {k for k, states in status.items() if states == {FindingStatus.SUPPRESSED}}


def _vulnerability_facts(
    conn: Connection, digests: Sequence[str]
) -> dict[str, tuple[list[str], list[VulnerabilityFact]]]:
    v, p = image_vulnerabilities, image_packages
    accepted = _accepted(conn, digests)
    found: dict[str, dict[tuple[str, str], VulnerabilityFact]] = {}
    malicious: dict[str, set[str]] = {}
    for chunk in chunks(list(digests)):
        stmt = (
            select(
                v.c.digest, v.c.vuln_id, v.c.key_id, v.c.severity, v.c.fixed_versions, v.c.malicious,
                p.c.type, p.c.name, p.c.found_in,
            )
            .join(p, p.c.id == v.c.package_id)
            .where(v.c.digest.in_(chunk))
        )  # fmt: skip
        for r in conn.execute(stmt):
            if (r.digest, f"{package_key(r.type, r.name, r.found_in)}:{r.key_id}") in accepted:
                continue
            if r.malicious:
                malicious.setdefault(r.digest, set()).add(r.name)
                continue
            severity = Severity(r.severity) if r.severity in Severity._value2member_map_ else Severity.UNKNOWN
            fact = VulnerabilityFact(
                advisory_id=r.vuln_id, package=r.name, severity=severity, fixable=bool(r.fixed_versions)
            )
            found.setdefault(r.digest, {}).setdefault((fact.advisory_id, fact.package), fact)
    per_digest = max(
        MIN_FEED_VULNERABILITIES, min(MAX_FEED_VULNERABILITIES, MAX_FEED_VULNERABILITIES_TOTAL // max(1, len(found)))
    )
    out = {}
    for digest in set(found) | set(malicious):
        vulns = sorted(
            found.get(digest, {}).values(),
            key=lambda f: (-severity_rank(f.severity), not f.fixable, f.advisory_id, f.package),
        )
        out[digest] = (sorted(malicious.get(digest, ())), vulns[:per_digest])
    return out


def feed_facts(conn: Connection, cluster_id: str) -> tuple[list[DigestFacts], list[TagFacts]]:
    """Both kinds of facts, reading the integrity verdicts once."""
    rows = _integrity_rows(conn)
    return digest_facts(conn, cluster_id, rows), tag_facts(conn, rows)


def digest_facts(conn: Connection, cluster_id: str, integrity_rows: Sequence | None = None) -> list[DigestFacts]:
    """What the service knows of each digest a webhook of ``cluster_id`` may be asked about, by digest."""
    digests = _known_digests(conn, cluster_id)
    wanted = set(digests)
    repositories: dict[str, set[str]] = {}
    for r in _integrity_rows(conn) if integrity_rows is None else integrity_rows:
        evidence = r.evidence if isinstance(r.evidence, dict) else {}
        repository = evidence.get("repository")
        if r.digest in wanted and isinstance(repository, str) and _present(r.status, r.verdict, evidence):
            repositories.setdefault(r.digest, set()).add(repository)
    scanned: set[str] = set()
    for chunk in chunks(digests):
        scanned |= {
            d
            for (d,) in conn.execute(
                select(image_scans.c.digest).where(image_scans.c.digest.in_(chunk), image_scans.c.status == "done")
            )
        }
    contents = _vulnerability_facts(conn, sorted(scanned))
    signed = _signature_facts(conn, digests)
    out = []
    for digest in sorted(digests):
        bad, vulns = contents.get(digest, ([], []))
        out.append(
            DigestFacts(
                digest=digest,
                repositories=sorted(repositories.get(digest, ()))[:MAX_IMAGES],
                scanned=digest in scanned,
                malicious_packages=bad,
                vulnerabilities=vulns,
                signatures=signed.get(digest),
            )
        )
    return out


def _signature_facts(conn: Connection, digests: Sequence[str]) -> dict[str, SignatureFacts]:
    """Each digest's signature checks made against the accepted keys of the current trust policy."""
    # Imported here: the policy store reads the signature rules the revision is made of.
    from vigil.service.store.policy import load_signature_rules

    rules = load_signature_rules(conn)
    if not rules:
        return {}
    revision = material(rules).revision
    out: dict[str, SignatureFacts] = {}
    for digest, state in signature_store.load_states(conn, digests).items():
        if state.material_revision != revision:
            continue
        doc = state.signatures.to_doc()
        out[digest] = SignatureFacts(
            checks=[SignatureCheckFact.model_validate(c) for c in doc["checks"]], unknown=doc["unknown"]
        )
    return out


def tag_facts(conn: Connection, integrity_rows: Sequence | None = None) -> list[TagFacts]:
    """What the trusted registry held for each tag the integrity probe asked it about (the latest answer)."""
    latest: dict[str, tuple[datetime, str | None, set[str]]] = {}
    for r in _integrity_rows(conn) if integrity_rows is None else integrity_rows:
        evidence = r.evidence if isinstance(r.evidence, dict) else {}
        repository, tag = evidence.get("repository"), evidence.get("tag")
        if r.status not in ("verified", "violation") or not isinstance(repository, str) or not isinstance(tag, str):
            continue
        if evidence.get("missing") == "digest":
            continue  # a digest pinned without a tag: the tag was not asked
        digest = None if evidence.get("missing") == "tag" else r.registry_digest
        artifacts = {digest} if digest else set()
        if digest and evidence.get("same_artifact") and r.digest:
            artifacts.add(r.digest)  # a platform manifest of the tag's index
        reference = f"{repository}:{tag}"
        at = as_utc(r.checked_at)
        seen = latest.get(reference)
        if seen is None or at > seen[0]:
            latest[reference] = (at, digest, artifacts)
        elif seen[1] == digest:
            seen[2].update(artifacts)
    return [
        TagFacts(reference=ref, digest=digest, artifacts=sorted(artifacts)[:MAX_IMAGES], checked_at=at)
        for ref, (at, digest, artifacts) in sorted(latest.items())[:MAX_FEED_TAGS]
    ]
