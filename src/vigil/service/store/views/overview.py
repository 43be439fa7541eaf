"""The overview's aggregates: open findings over time and the riskiest workloads and images."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Connection, and_, case, func, or_, select

from vigil.clock import utcnow
from vigil.model.findings import FindingStatus
from vigil.service.store import contents as contents_store
from vigil.service.store import risk as risk_store
from vigil.service.store.risk import OpenRisk, open_risk
from vigil.service.store.schema import finding_events, findings, images
from vigil.service.store.views.common import cluster_names, image_ref
from vigil.service.store.views.images import image_vulnerability_counts, scan_verdict


def open_findings_series(conn: Connection, days: int = 14, today: date | None = None) -> list[tuple[date, int]]:
    """Open findings at the end of each of the last ``days`` days (UTC), from the findings' history."""
    ev = finding_events.c
    delta = case(
        (
            and_(
                ev.to_status == FindingStatus.OPEN, or_(ev.from_status.is_(None), ev.from_status != FindingStatus.OPEN)
            ),
            1,
        ),
        (and_(ev.from_status == FindingStatus.OPEN, ev.to_status != FindingStatus.OPEN), -1),
        else_=0,
    )
    if conn.dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", ev.at), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", ev.at)
    per_day = {d: int(n or 0) for d, n in conn.execute(select(day.label("d"), func.sum(delta)).group_by(day))}
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    running = sum(n for d, n in per_day.items() if date.fromisoformat(d) < start)
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        running += per_day.get(d.isoformat(), 0)
        out.append((d, running))
    return out


def riskiest_workloads(conn: Connection, limit: int = 5, risk: OpenRisk | None = None) -> list[dict]:
    """Workloads with open findings ranked by their rolled-up risk score (store/risk.py), highest first."""
    risks = (risk or open_risk(conn)).workloads
    top = sorted(risks.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:limit]
    names = cluster_names(conn, {k[0] for k, _ in top})
    sev: dict[tuple, dict[str, int]] = {}
    if top:
        for cid, ns, kind, name, s, n in conn.execute(
            select(
                findings.c.cluster_id,
                findings.c.namespace,
                findings.c.workload_kind,
                findings.c.workload_name,
                findings.c.severity,
                func.count(),
            )
            .where(findings.c.status == FindingStatus.OPEN, findings.c.workload_name.in_({k[3] for k, _ in top}))
            .group_by(
                findings.c.cluster_id,
                findings.c.namespace,
                findings.c.workload_kind,
                findings.c.workload_name,
                findings.c.severity,
            )
        ):
            sev.setdefault((cid, ns, kind, name), {})[s] = n
    return [
        {
            "cluster_id": k[0],
            "cluster_name": names.get(k[0]),
            "namespace": k[1],
            "kind": k[2],
            "name": k[3],
            "risk": risk,
            "severities": sev.get(k, {}),
            "total": risk["parts"]["open_findings"],
        }
        for k, risk in top
    ]


def riskiest_images(conn: Connection, limit: int = 5, risk: OpenRisk | None = None) -> list[dict]:
    """Images with open findings ranked by their rolled-up risk score, highest first."""
    risks = (risk or open_risk(conn)).images
    top = sorted(risks.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:limit]
    pks = [pk for pk, _ in top]
    rows = {r.id: r for r in conn.execute(select(images).where(images.c.id.in_(pks)))} if pks else {}
    usage = risk_store.image_usage(conn, pks)
    counts = image_vulnerability_counts(conn, pks)
    coverage = contents_store.scan_coverage(conn, [rows[pk].digest for pk in pks if pk in rows])
    return [
        {
            "id": pk,
            "ref": image_ref(rows[pk].registry, rows[pk].repository, rows[pk].tag, rows[pk].digest),
            "risk": risk,
            "total": risk["parts"]["open_findings"],
            "usage": usage[pk],
            **counts[pk],
            "scan_verdict": scan_verdict(
                counts[pk]["scan_status"],
                sum(counts[pk]["vulnerabilities"].values()),
                coverage.get(rows[pk].digest),
            ),
        }
        for pk, risk in top
        if pk in rows
    ]
