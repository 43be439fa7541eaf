"""Findings and their history: open on observation, resolve when the condition ends, suppress on request.

Every change of status or severity appends a row to finding_events, so a finding's
whole story stays readable after it is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from vigil.service.store.schema import finding_events, findings
from vigil.service.store.tokens import utcnow

FINDING_TYPES = (
    "untrusted_registry",
    "digest_mismatch",
    "tag_moved",
    "artifact_missing",
    "vulnerable_package",
    "malicious_package",
    "running_vulnerability",
    "runtime_drift",
    "tampered_binary",
    "suspicious_exec",
)
SEVERITIES = ("critical", "high", "medium", "low", "info", "unknown")


@dataclass(frozen=True)
class Observation:
    """One analysis result that should be an open finding."""

    dedup_key: str
    type: str
    severity: str
    subject: str
    evidence: dict = field(default_factory=dict)
    cluster_id: str | None = None
    namespace: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    image_pk: int | None = None

    def __post_init__(self) -> None:
        if self.type not in FINDING_TYPES:
            raise ValueError(f"finding type {self.type!r} is not one of {', '.join(FINDING_TYPES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")


def _event(conn: Connection, finding_id: int, frm: str | None, to: str, severity: str, reason: str | None, actor: str, at) -> None:
    conn.execute(
        finding_events.insert().values(
            finding_id=finding_id, at=at, from_status=frm, to_status=to, severity=severity, reason=reason, actor=actor
        )
    )


def observe(conn: Connection, obs: Observation, actor: str = "analysis") -> tuple[int, str]:
    """Open (or refresh) the finding for ``obs``. Returns (id, change) with change one of
    ``opened``, ``reopened``, ``escalated``, ``changed``, ``unchanged``, ``suppressed``."""
    now = utcnow()
    row = conn.execute(select(findings).where(findings.c.dedup_key == obs.dedup_key)).first()
    values = dict(
        type=obs.type,
        severity=obs.severity,
        subject=obs.subject,
        evidence=obs.evidence,
        cluster_id=obs.cluster_id,
        namespace=obs.namespace,
        workload_kind=obs.workload_kind,
        workload_name=obs.workload_name,
        image_pk=obs.image_pk,
        last_seen_at=now,
    )
    if row is None:
        result = conn.execute(
            findings.insert().values(
                dedup_key=obs.dedup_key, status="open", first_seen_at=now, status_changed_at=now, **values
            )
        )
        fid = result.inserted_primary_key[0]
        _event(conn, fid, None, "open", obs.severity, "observed", actor, now)
        return fid, "opened"
    if row.status == "suppressed":
        # A suppressed finding stays suppressed; keep its evidence current.
        conn.execute(update(findings).where(findings.c.id == row.id).values(**values))
        return row.id, "suppressed"
    change = "unchanged"
    if row.status == "resolved":
        values.update(status="open", status_changed_at=now, status_reason=None)
        _event(conn, row.id, "resolved", "open", obs.severity, "observed again", actor, now)
        change = "reopened"
    elif row.severity != obs.severity:
        _event(conn, row.id, "open", "open", obs.severity, f"severity {row.severity} -> {obs.severity}", actor, now)
        change = "escalated" if SEVERITIES.index(obs.severity) < SEVERITIES.index(row.severity) else "changed"
    conn.execute(update(findings).where(findings.c.id == row.id).values(**values))
    return row.id, change


def set_status(conn: Connection, finding_id: int, status: str, reason: str, actor: str) -> bool:
    """Resolve, suppress or reopen a finding by hand, with a reason kept in its history."""
    if status not in ("open", "resolved", "suppressed"):
        raise ValueError(f"status {status!r} is not one of open, resolved, suppressed")
    row = conn.execute(select(findings.c.status, findings.c.severity).where(findings.c.id == finding_id)).first()
    if row is None:
        return False
    if row.status == status:
        return True
    now = utcnow()
    conn.execute(
        update(findings).where(findings.c.id == finding_id).values(status=status, status_reason=reason, status_changed_at=now)
    )
    _event(conn, finding_id, row.status, status, row.severity, reason, actor, now)
    return True


def resolve_absent(conn: Connection, dedup_prefix: str, still_present: set[str], reason: str, actor: str = "analysis") -> int:
    """Resolve open findings under ``dedup_prefix`` whose condition was not observed in this pass."""
    rows = conn.execute(
        select(findings.c.id, findings.c.dedup_key).where(
            findings.c.status == "open", findings.c.dedup_key.startswith(dedup_prefix, autoescape=True)
        )
    ).all()
    n = 0
    for r in rows:
        if r.dedup_key not in still_present:
            set_status(conn, r.id, "resolved", reason, actor)
            n += 1
    return n
