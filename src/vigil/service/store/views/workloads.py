"""Top-level workloads: the API's rows (pod counts, risk) and the console's (sortable, with open findings)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, select

from vigil.model.findings import FindingStatus
from vigil.service.store import risk as risk_store
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import clusters, containers, findings, pods, workloads
from vigil.service.store.views.common import Page, iso

BY_KEY = Sort(
    ((workloads.c.cluster_id, "str"), (workloads.c.namespace, "str"), (workloads.c.kind, "str"), (workloads.c.name, "str"))
)


@dataclass(frozen=True)
class WorkloadFilter:
    cluster_id: str | None = None
    namespace: str | None = None
    kind: str | None = None
    text: str | None = None  # part of the name


WORKLOAD_SORTS = ("name", "findings", "pods")


def _conditions(f: WorkloadFilter) -> list:
    w = workloads.c
    cond = []
    if f.cluster_id:
        cond.append(w.cluster_id == f.cluster_id)
    if f.namespace:
        cond.append(w.namespace == f.namespace)
    if f.kind:
        cond.append(w.kind == f.kind)
    if f.text:
        cond.append(func.lower(w.name).contains(f.text.lower(), autoescape=True))
    return cond


def list_workloads(conn: Connection, f: WorkloadFilter, after: str | None, limit: int) -> Page:
    """Every column of each workload with its pod count and risk; by cluster, namespace, kind, name."""
    rows, nxt = keyset_rows(conn, select(workloads).where(*_conditions(f)), BY_KEY, after, limit)
    counts: dict = {}
    if rows:
        cids = {r.cluster_id for r in rows}
        names = {r.name for r in rows}
        q = (
            select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count())
            .where(pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names))
            .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        )
        counts = {tuple(r[:4]): r[4] for r in conn.execute(q)}
    items = []
    for r in rows:
        d = {k: v for k, v in r._mapping.items() if not k.startswith("_k")}
        d["updated_at"] = iso(d["updated_at"])
        d["pods"] = counts.get((r.cluster_id, r.namespace, r.kind, r.name), 0)
        items.append(d)
    risks = risk_store.workload_risk(conn, [(d["cluster_id"], d["namespace"], d["kind"], d["name"]) for d in items])
    for d in items:
        d["risk"] = risks[(d["cluster_id"], d["namespace"], d["kind"], d["name"])]
    return Page(items, nxt)


def console_workloads(conn: Connection, f: WorkloadFilter, sort: str, descending: bool, after: str | None, limit: int) -> Page:
    w = workloads.c
    fc = (
        select(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, func.count().label("n"))
        .where(findings.c.status == FindingStatus.OPEN, findings.c.workload_name.is_not(None))
        .group_by(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name)
        .subquery()
    )
    pc = (
        select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count().label("n"))
        .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        .subquery()
    )
    n_findings, n_pods = func.coalesce(fc.c.n, 0), func.coalesce(pc.c.n, 0)
    name_key = ((w.cluster_id, "str"), (w.namespace, "str"), (w.kind, "str"), (w.name, "str"))
    keys = {"name": name_key, "findings": ((n_findings, "int"),) + name_key, "pods": ((n_pods, "int"),) + name_key}[sort]
    cond = _conditions(f)
    stmt = (
        select(workloads, clusters.c.name.label("cluster_name"), n_findings.label("open_findings"), n_pods.label("pods"))
        .select_from(
            workloads.join(clusters, clusters.c.id == w.cluster_id)
            .outerjoin(fc, and_(fc.c.cluster_id == w.cluster_id, fc.c.namespace == w.namespace, fc.c.workload_kind == w.kind, fc.c.workload_name == w.name))
            .outerjoin(pc, and_(pc.c.cluster_id == w.cluster_id, pc.c.namespace == w.namespace, pc.c.workload_kind == w.kind, pc.c.workload_name == w.name))
        )
        .where(*cond)
    )
    rows, nxt = keyset_rows(conn, stmt, Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(workloads).where(*cond)).scalar_one()
    sev: dict[tuple, dict[str, int]] = {}
    ctr: dict[tuple, int] = {}
    if rows:
        cids, names = {r.cluster_id for r in rows}, {r.name for r in rows}
        for cid, ns, kind, name, s, n in conn.execute(
            select(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity, func.count())
            .where(
                findings.c.status == FindingStatus.OPEN, findings.c.cluster_id.in_(cids), findings.c.workload_name.in_(names)
            )
            .group_by(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity)
        ):
            sev.setdefault((cid, ns, kind, name), {})[s] = n
        for cid, ns, kind, name, n in conn.execute(
            select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count())
            .join(containers, (containers.c.cluster_id == pods.c.cluster_id) & (containers.c.pod_uid == pods.c.uid))
            .where(pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names))
            .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        ):
            ctr[(cid, ns, kind, name)] = n
    items = []
    for r in rows:
        key = (r.cluster_id, r.namespace, r.kind, r.name)
        items.append(
            {
                "cluster_id": r.cluster_id,
                "cluster_name": r.cluster_name,
                "namespace": r.namespace,
                "kind": r.kind,
                "name": r.name,
                "owner_chain": r.owner_chain,
                "labels": r.labels,
                "pods": r.pods,
                "containers": ctr.get(key, 0),
                "open_findings": r.open_findings,
                "severities": sev.get(key, {}),
            }
        )
    return Page(items, nxt, total)


def get_workload(conn: Connection, cluster_id: str, namespace: str, kind: str, name: str) -> dict | None:
    r = conn.execute(
        select(workloads, clusters.c.name.label("cluster_name"))
        .join(clusters, clusters.c.id == workloads.c.cluster_id)
        .where(workloads.c.cluster_id == cluster_id, workloads.c.namespace == namespace, workloads.c.kind == kind, workloads.c.name == name)
    ).first()
    if r is None:
        return None
    return {
        "cluster_id": r.cluster_id,
        "cluster_name": r.cluster_name,
        "namespace": r.namespace,
        "kind": r.kind,
        "name": r.name,
        "owner_chain": r.owner_chain,
        "labels": r.labels,
        "updated_at": iso(r.updated_at),
    }
