"""Findings and their history: open on observation, resolve when the condition ends, suppress on request.

Every change of status or severity appends a row to finding_events, so a finding's
whole story stays readable after it is resolved.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from vigil.clock import utcnow
from vigil.model.findings import (
    FINDING_STATUSES,
    FINDING_TYPES,
    SEVERITIES,
    Family,
    FindingStatus,
    family_of,
    severity_rank,
    workload_scope,
)
from vigil.service.store.db import inserted_id
from vigil.service.store.notify import FINDINGS_CHANGED, notify
from vigil.service.store.schema import finding_events, findings

__all__ = ["Observation", "OpenFinding", "observe", "open_findings", "resolve_absent", "set_status"]


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
    subject_key: str = ""  # what the finding is about inside its scope (see vigil.model.findings)

    def __post_init__(self) -> None:
        if self.type not in FINDING_TYPES:
            raise ValueError(f"finding type {self.type!r} is not one of {', '.join(FINDING_TYPES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    @property
    def family(self) -> Family:
        return family_of(self.type)

    @property
    def scope(self) -> str:
        return workload_scope(self.cluster_id, self.namespace, self.workload_kind, self.workload_name, self.image_pk)


@dataclass(frozen=True, slots=True)
class OpenFinding:
    """An open finding as a pass settles it: by its image in a cluster, its scope and its type."""

    id: int
    dedup_key: str
    type: str
    cluster_id: str | None
    image_pk: int | None
    scope: str


def open_findings(conn: Connection, family: Family) -> dict[str, OpenFinding]:
    """dedup_key -> every open finding of ``family``."""
    f = findings.c
    stmt = select(f.id, f.dedup_key, f.type, f.cluster_id, f.image_pk, f.scope).where(
        f.family == family, f.status == FindingStatus.OPEN
    )
    return {r.dedup_key: OpenFinding(*r) for r in conn.execute(stmt)}


def _event(
    conn: Connection, finding_id: int, frm: str | None, to: str, severity: str, reason: str | None, actor: str, at
) -> None:
    conn.execute(
        finding_events.insert().values(
            finding_id=finding_id, at=at, from_status=frm, to_status=to, severity=severity, reason=reason, actor=actor
        )
    )
    notify(conn, FINDINGS_CHANGED)  # every replica's findings stream sends it at the commit


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
        family=obs.family,
        scope=obs.scope,
        subject_key=obs.subject_key,
        last_seen_at=now,
    )
    if row is None:
        result = conn.execute(
            findings.insert().values(
                dedup_key=obs.dedup_key, status=FindingStatus.OPEN, first_seen_at=now, status_changed_at=now, **values
            )
        )
        fid = inserted_id(result)
        _event(conn, fid, None, FindingStatus.OPEN, obs.severity, "observed", actor, now)
        return fid, "opened"
    if row.status == FindingStatus.SUPPRESSED:
        # A suppressed finding stays suppressed; keep its evidence current.
        conn.execute(update(findings).where(findings.c.id == row.id).values(**values))
        return row.id, "suppressed"
    change = "unchanged"
    if row.status == FindingStatus.RESOLVED:
        values.update(status=FindingStatus.OPEN, status_changed_at=now, status_reason=None)
        _event(conn, row.id, FindingStatus.RESOLVED, FindingStatus.OPEN, obs.severity, "observed again", actor, now)
        change = "reopened"
    elif row.severity != obs.severity:
        reason = f"severity {row.severity} -> {obs.severity}"
        _event(conn, row.id, FindingStatus.OPEN, FindingStatus.OPEN, obs.severity, reason, actor, now)
        change = "escalated" if severity_rank(obs.severity) > severity_rank(row.severity) else "changed"
    conn.execute(update(findings).where(findings.c.id == row.id).values(**values))
    return row.id, change


def set_status(conn: Connection, finding_id: int, status: str, reason: str, actor: str) -> bool:
    """Resolve, suppress or reopen a finding by hand, with a reason kept in its history."""
    if status not in FINDING_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(FINDING_STATUSES)}")
    row = conn.execute(select(findings.c.status, findings.c.severity).where(findings.c.id == finding_id)).first()
    if row is None:
        return False
    if row.status == status:
        return True
    now = utcnow()
    conn.execute(
        update(findings)
        .where(findings.c.id == finding_id)
        .values(status=status, status_reason=reason, status_changed_at=now)
    )
    _event(conn, finding_id, row.status, status, row.severity, reason, actor, now)
    return True


def resolve_absent(
    conn: Connection,
    family: Family,
    still_present: set[str],
    reason: str,
    actor: str = "analysis",
    *,
    scopes: Collection[str] | None = None,
) -> int:
    """Resolve the open findings of ``family`` (in ``scopes``, or all) whose dedup key was not
    observed in this pass."""
    stmt = select(findings.c.id, findings.c.dedup_key).where(
        findings.c.family == family, findings.c.status == FindingStatus.OPEN
    )
    if scopes is not None:
        stmt = stmt.where(findings.c.scope.in_(sorted(scopes)))
    n = 0
    for r in conn.execute(stmt).all():
        if r.dedup_key not in still_present:
            set_status(conn, r.id, FindingStatus.RESOLVED, reason, actor)
            n += 1
    return n
