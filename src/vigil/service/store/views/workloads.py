"""Top-level workloads: one sortable listing for the API and the console (pod counts, risk; with
``with_findings``, also what the console's list shows of each), and one workload."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, FromClause, Row, and_, func, select

from vigil.model.findings import FindingStatus
from vigil.service.store import risk as risk_store
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import clusters, containers, findings, pods, workloads
from vigil.service.store.views.common import Page, cluster_names, iso

WORKLOAD_SORTS = ("name", "findings", "pods")
WorkloadKey = tuple[str, str, str, str]  # cluster id, namespace, kind, name


@dataclass(frozen=True)
class WorkloadFilter:
    cluster_id: str | None = None
    namespace: str | None = None
    kind: str | None = None
    text: str | None = None  # part of the name


def workload_dict(r: Row) -> dict:
    """A workload's own columns."""
    return {
        "cluster_id": r.cluster_id,
        "namespace": r.namespace,
        "kind": r.kind,
        "name": r.name,
        "owner_chain": r.owner_chain,
        "labels": r.labels,
        "updated_at": iso(r.updated_at),
    }


def _conditions(f: WorkloadFilter) -> list[ColumnElement[bool]]:
    w = workloads.c
    cond: list[ColumnElement[bool]] = []
    if f.cluster_id:
        cond.append(w.cluster_id == f.cluster_id)
    if f.namespace:
        cond.append(w.namespace == f.namespace)
    if f.kind:
        cond.append(w.kind == f.kind)
    if f.text:
        cond.append(func.lower(w.name).contains(f.text.lower(), autoescape=True))
    return cond


def _per_workload(source: FromClause, *where: ColumnElement[bool]):
    """Rows of ``source`` (findings or pods, which name their workload alike) counted per workload."""
    c = source.c
    return (
        select(c.cluster_id, c.namespace, c.workload_kind, c.workload_name, func.count().label("n"))
        .where(*where)
        .group_by(c.cluster_id, c.namespace, c.workload_kind, c.workload_name)
    )


def _joined_on_workload(source: FromClause, counts) -> FromClause:
    w = workloads.c
    on = and_(
        counts.c.cluster_id == w.cluster_id,
        counts.c.namespace == w.namespace,
        counts.c.workload_kind == w.kind,
        counts.c.workload_name == w.name,
    )
    return source.outerjoin(counts, on)


def list_workloads(
    conn: Connection,
    f: WorkloadFilter,
    sort: str,
    descending: bool,
    after: str | None,
    limit: int,
    *,
    with_findings: bool = False,
) -> Page:
    """Workloads matching ``f`` in ``sort`` order ("name" is by cluster, namespace, kind and name),
    counted; each with its pod count and risk. With ``with_findings``, also its cluster's name, its
    containers, and its open findings (in all and by severity), as the console lists them."""
    w = workloads.c
    name_key = ((w.cluster_id, "str"), (w.namespace, "str"), (w.kind, "str"), (w.name, "str"))
    cond = _conditions(f)
    # Aggregate over every workload only when the order needs it; otherwise count for the page alone.
    source: FromClause = workloads
    keys: tuple = name_key
    if sort == "findings":
        open_counts = _per_workload(
            findings, findings.c.status == FindingStatus.OPEN, findings.c.workload_name.is_not(None)
        ).subquery()
        source = _joined_on_workload(source, open_counts)
        keys = ((func.coalesce(open_counts.c.n, 0), "int"),) + name_key
    elif sort == "pods":
        pod_counts = _per_workload(pods).subquery()
        source = _joined_on_workload(source, pod_counts)
        keys = ((func.coalesce(pod_counts.c.n, 0), "int"),) + name_key
    rows, nxt = keyset_rows(
        conn, select(workloads).select_from(source).where(*cond), Sort(keys, descending), after, limit
    )
    total = conn.execute(select(func.count()).select_from(workloads).where(*cond)).scalar_one()
    page_keys: list[WorkloadKey] = [(r.cluster_id, r.namespace, r.kind, r.name) for r in rows]
    cids, names = {k[0] for k in page_keys}, {k[3] for k in page_keys}
    n_pods: dict[tuple, int] = {}
    if rows:
        n_pods = {
            tuple(r[:4]): r[4]
            for r in conn.execute(_per_workload(pods, pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names)))
        }
    risks = risk_store.workload_risk(conn, page_keys)
    items = []
    for r, key in zip(rows, page_keys, strict=True):
        d = workload_dict(r)
        d["pods"] = n_pods.get(key, 0)
        d["risk"] = risks[key]
        items.append(d)
    if with_findings:
        _add_findings(conn, items, page_keys, cids, names)
    return Page(items, nxt, total)


def _add_findings(
    conn: Connection, items: list[dict], keys: list[WorkloadKey], cids: set[str], names: set[str]
) -> None:
    sev: dict[tuple, dict[str, int]] = {}
    ctr: dict[tuple, int] = {}
    if items:
        fc = findings.c
        for cid, ns, kind, name, s, n in conn.execute(
            select(fc.cluster_id, fc.namespace, fc.workload_kind, fc.workload_name, fc.severity, func.count())
            .where(fc.status == FindingStatus.OPEN, fc.cluster_id.in_(cids), fc.workload_name.in_(names))
            .group_by(fc.cluster_id, fc.namespace, fc.workload_kind, fc.workload_name, fc.severity)
        ):
            sev.setdefault((cid, ns, kind, name), {})[s] = n
        in_containers = pods.join(
            containers, (containers.c.cluster_id == pods.c.cluster_id) & (containers.c.pod_uid == pods.c.uid)
        )
        stmt = _per_workload(pods, pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names)).select_from(
            in_containers
        )
        ctr = {tuple(r[:4]): r[4] for r in conn.execute(stmt)}
    names_of = cluster_names(conn, cids)
    for d, key in zip(items, keys, strict=True):
        d["cluster_name"] = names_of.get(key[0])
        d["containers"] = ctr.get(key, 0)
        d["severities"] = sev.get(key, {})
        d["open_findings"] = sum(d["severities"].values())


def get_workload(conn: Connection, cluster_id: str, namespace: str, kind: str, name: str) -> dict | None:
    r = conn.execute(
        select(workloads, clusters.c.name.label("cluster_name"))
        .join(clusters, clusters.c.id == workloads.c.cluster_id)
        .where(
            workloads.c.cluster_id == cluster_id,
            workloads.c.namespace == namespace,
            workloads.c.kind == kind,
            workloads.c.name == name,
        )
    ).first()
    if r is None:
        return None
    return {**workload_dict(r), "cluster_name": r.cluster_name}
