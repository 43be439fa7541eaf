"""What each digest's signatures prove (one row per digest), the dedup keys of signature findings, and a
workload's verdict from the stored checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc
from vigil.model.image import ImageRef, digest_error
from vigil.policy.signature_checks import DigestSignatures, unknown
from vigil.policy.signature_rules import rule_for
from vigil.policy.signature_verdict import SignatureStatus, SignatureVerdict, evaluate
from vigil.policy.trust import TrustPolicy
from vigil.service.store.chunks import chunks
from vigil.service.store.integrity import RunningImage
from vigil.service.store.schema import image_signatures

DEDUP_PREFIX = "signatures:"


@dataclass(frozen=True, slots=True)
class SignatureState:
    signatures: DigestSignatures
    material_revision: str
    checked_at: datetime
    next_check_at: datetime | None  # None: verified, never asked again
    failures: int


def dedup_key(finding_type: str, r: RunningImage) -> str:
    """One finding per (type, cluster, image, workload), as integrity findings are."""
    return f"{DEDUP_PREFIX}{r.cluster_id}:{r.image_pk}:{r.namespace}:{r.workload_kind}/{r.workload_name}:{finding_type}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a digest was checked and is due again, without its checks (read every pass)."""

    material_revision: str
    checked_at: datetime
    next_check_at: datetime | None
    failures: int


def load_schedule(conn: Connection) -> dict[str, Schedule]:
    t = image_signatures.c
    rows = conn.execute(select(t.digest, t.material_revision, t.checked_at, t.next_check_at, t.failures))
    return {
        r.digest: Schedule(
            r.material_revision,
            as_utc(r.checked_at),
            as_utc(r.next_check_at) if r.next_check_at is not None else None,
            r.failures,
        )
        for r in rows
    }


def _state(row) -> SignatureState:
    return SignatureState(
        DigestSignatures.from_doc(row.checks),
        row.material_revision,
        as_utc(row.checked_at),
        as_utc(row.next_check_at) if row.next_check_at is not None else None,
        row.failures,
    )


def load_states(conn: Connection, digests: Iterable[str] | None = None) -> dict[str, SignatureState]:
    """Every digest's state, or only those of ``digests``."""
    if digests is None:
        return {r.digest: _state(r) for r in conn.execute(select(image_signatures))}
    out: dict[str, SignatureState] = {}
    for chunk in chunks(sorted(set(digests))):
        for r in conn.execute(select(image_signatures).where(image_signatures.c.digest.in_(chunk))):
            out[r.digest] = _state(r)
    return out


def upsert_states(conn: Connection, rows: list[dict]) -> None:
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(image_signatures)
    stmt = stmt.on_conflict_do_update(
        index_elements=["digest"], set_={c: stmt.excluded[c] for c in rows[0] if c != "digest"}
    )
    for chunk in chunks(rows):
        conn.execute(stmt, chunk)


def state_row(
    sigs: DigestSignatures,
    material_revision: str,
    checked_at: datetime,
    next_check_at: datetime | None,
    failures: int,
) -> dict:
    return dict(
        digest=sigs.digest,
        material_revision=material_revision,
        status=sigs.status,
        checks=sigs.to_doc(),
        checked_at=checked_at,
        next_check_at=next_check_at,
        failures=failures,
    )


def effective_ref(policy: TrustPolicy, r: RunningImage) -> tuple[ImageRef | None, bool | None]:
    """Where the workload's image is really pulled from, and whether that place is trusted."""
    if not r.registry:
        return None, None
    ref = ImageRef(r.registry, r.repository, r.tag or None, None)
    decision = policy.decide(ref, (r.cluster_id, r.cluster_name))
    return decision.effective, decision.trusted


def judge(
    policy: TrustPolicy, r: RunningImage, state: SignatureState | None, material_revision: str
) -> SignatureVerdict:
    """The verdict of one workload running one image, from the stored checks (pure)."""
    eff, trusted = effective_ref(policy, r)
    digest = r.digest if r.digest and digest_error(r.digest) is None else None
    if eff is None:
        return SignatureVerdict(SignatureStatus.UNKNOWN, (), {"reason": "not a valid image reference"})
    rule = rule_for(policy.signatures, eff, (r.cluster_id, r.cluster_name), r.namespace)
    image = eff.with_digest(digest).name if digest else eff.name
    if rule is not None and trusted is not True:
        why = "the registry is not trusted, so it is not asked for signatures"
        sigs: DigestSignatures | None = unknown(digest or "", why)
    elif digest is None:
        sigs = None
    elif state is None or state.material_revision != material_revision:
        sigs = None
    else:
        sigs = state.signatures
    return evaluate(sigs, rule, image=str(eff.with_digest(digest)) if digest else image, digest=digest)
