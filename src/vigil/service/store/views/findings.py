"""Findings: one filter and one sortable listing for the API and the console, a finding with its
history, and the counts and markers the overview and live pages read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, case, func, or_, select

from vigil.model.findings import RUNTIME_TYPES, SEVERITIES, FindingStatus
from vigil.service.store import risk as risk_store
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import clusters, containers, finding_events, findings, images, vulnerability_runtime
from vigil.service.store.views.common import Page, image_ref, iso

SEVERITY_RANK = case({s.value: i for i, s in enumerate(SEVERITIES)}, value=findings.c.severity, else_=len(SEVERITIES))
FINDING_SORTS = ("severity", "last_seen", "first_seen", "type", "id")


@dataclass(frozen=True)
class FindingFilter:
    types: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    cluster_id: str | None = None
    namespace: str | None = None
    image_pk: int | None = None
    workload: tuple[str, str, str, str] | None = None  # cluster id, namespace, kind, name
    running_only: bool = False
    text: str | None = None  # part of the subject
    since: datetime | None = None  # changed (opened, severity, status) at or after this time
    runtime_states: tuple[str, ...] = ()  # package findings with one of these runtime labels


def finding_dict(r) -> dict:
    return {
        "id": r.id,
        "type": r.type,
        "severity": r.severity,
        "subject": r.subject,
        "cluster_id": r.cluster_id,
        "namespace": r.namespace,
        "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_kind else None,
        "image_pk": r.image_pk,
        "evidence": r.evidence,
        "status": r.status,
        "status_reason": r.status_reason,
        "first_seen_at": iso(r.first_seen_at),
        "last_seen_at": iso(r.last_seen_at),
        "status_changed_at": iso(r.status_changed_at),
    }


def _conditions(f: FindingFilter) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if f.since is not None:
        # changed since: any entry in its history (opened, severity, status) at or after `since`
        cond.append(findings.c.id.in_(select(finding_events.c.finding_id).where(finding_events.c.at >= f.since)))
    if f.runtime_states:
        cond.append(
            findings.c.id.in_(
                select(vulnerability_runtime.c.finding_id).where(vulnerability_runtime.c.state.in_(f.runtime_states))
            )
        )
    if f.types:
        cond.append(findings.c.type.in_(f.types))
    if f.severities:
        cond.append(findings.c.severity.in_(f.severities))
    if f.statuses:
        cond.append(findings.c.status.in_(f.statuses))
    if f.cluster_id:
        cond.append(findings.c.cluster_id == f.cluster_id)
    if f.namespace:
        cond.append(findings.c.namespace == f.namespace)
    if f.image_pk is not None:
        cond.append(findings.c.image_pk == f.image_pk)
    if f.workload:
        cid, ns, kind, name = f.workload
        cond += [
            findings.c.cluster_id == cid,
            findings.c.namespace == ns,
            findings.c.workload_kind == kind,
            findings.c.workload_name == name,
        ]
    if f.running_only:
        # Running: the finding is about execution, or a container of its image is running now.
        running_container = (
            select(containers.c.image_pk)
            .where(
                containers.c.image_pk == findings.c.image_pk,
                containers.c.state == "running",
                or_(findings.c.cluster_id.is_(None), containers.c.cluster_id == findings.c.cluster_id),
            )
            .exists()
        )
        cond.append(or_(findings.c.type.in_(RUNTIME_TYPES), running_container))
    if f.text:
        cond.append(func.lower(findings.c.subject).contains(f.text.lower(), autoescape=True))
    return cond


def finding_sort(name: str, descending: bool) -> Sort:
    keys = {
        "severity": ((SEVERITY_RANK, "int"), (findings.c.id, "int")),
        "last_seen": ((findings.c.last_seen_at, "ts"), (findings.c.id, "int")),
        "first_seen": ((findings.c.first_seen_at, "ts"), (findings.c.id, "int")),
        "type": ((findings.c.type, "str"), (findings.c.id, "int")),
        "id": ((findings.c.id, "int"),),
    }[name]
    return Sort(keys, descending)


def list_findings(
    conn: Connection, f: FindingFilter, sort: Sort, after: str | None, limit: int, *, names: bool = False
) -> Page:
    """Findings matching ``f`` in ``sort`` order, counted, each with its risk (and a package
    finding's runtime label); with ``names``, also its cluster's name and image's reference, as
    the console shows them."""
    cond = _conditions(f)
    stmt = (
        select(
            findings,
            clusters.c.name.label("cluster_name"),
            images.c.registry,
            images.c.repository,
            images.c.tag,
            images.c.digest.label("image_digest"),
        )
        .select_from(
            findings.outerjoin(clusters, clusters.c.id == findings.c.cluster_id).outerjoin(
                images, images.c.id == findings.c.image_pk
            )
        )
        .where(*cond)
    )
    rows, nxt = keyset_rows(conn, stmt, sort, after, limit)
    total = conn.execute(select(func.count()).select_from(findings).where(*cond)).scalar_one()
    items = []
    for r in rows:
        d = finding_dict(r)
        if names:
            d["cluster_name"] = r.cluster_name
            d["image_ref"] = image_ref(r.registry, r.repository, r.tag, r.image_digest)
        items.append(d)
    risk_store.attach_risk(conn, items)
    return Page(items, nxt, total)


def get_finding(conn: Connection, finding_id: int) -> dict | None:
    row = conn.execute(select(findings).where(findings.c.id == finding_id)).first()
    if row is None:
        return None
    d = finding_dict(row)
    risk_store.attach_risk(conn, [d])
    d["history"] = [
        {
            "at": iso(e.at),
            "from_status": e.from_status,
            "to_status": e.to_status,
            "severity": e.severity,
            "reason": e.reason,
            "actor": e.actor,
        }
        for e in conn.execute(
            select(finding_events).where(finding_events.c.finding_id == finding_id).order_by(finding_events.c.id)
        )
    ]
    return d


def finding_counts(conn: Connection, cluster: str | None = None) -> dict[str, dict[str, int]]:
    """Open findings by type and severity, for the overview."""
    stmt = select(findings.c.type, findings.c.severity, func.count()).where(findings.c.status == FindingStatus.OPEN)
    if cluster:
        stmt = stmt.where(findings.c.cluster_id == cluster)
    out: dict[str, dict[str, int]] = {}
    for t, s, n in conn.execute(stmt.group_by(findings.c.type, findings.c.severity)):
        out.setdefault(t, {})[s] = n
    return out


def findings_marker(conn: Connection) -> tuple:
    """Changes whenever a finding is added, seen again or changes status: what live views poll."""
    return tuple(
        conn.execute(
            select(
                func.count(),
                func.max(findings.c.id),
                func.max(findings.c.last_seen_at),
                func.max(findings.c.status_changed_at),
            )
        ).one()
    )


def finding_filter_choices(conn: Connection) -> dict[str, list]:
    """Values the findings filters offer: clusters and namespaces that have findings."""
    return {
        "clusters": [
            (r.id, r.name) for r in conn.execute(select(clusters.c.id, clusters.c.name).order_by(clusters.c.name))
        ],
        "namespaces": [
            n
            for (n,) in conn.execute(
                select(findings.c.namespace)
                .where(findings.c.namespace.is_not(None))
                .distinct()
                .order_by(findings.c.namespace)
            )
        ],
    }
