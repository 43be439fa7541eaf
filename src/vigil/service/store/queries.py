"""Read side of the store: listings with filters and key-based pagination, and the counts views need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, distinct, func, select

from vigil.service.store.pagination import page, split_page
from vigil.service.store.runtime import sensor_status
from vigil.service.store.schema import (
    clusters,
    containers,
    executions,
    finding_events,
    findings,
    images,
    nodes,
    pods,
    sensors,
    workloads,
)
from vigil.service.store.tokens import as_utc, utcnow

MISSED_BEATS_FOR_STOPPED = 3


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next: str | None


def controller_status(heartbeat_at, interval_s) -> str:
    if heartbeat_at is None:
        return "never_seen"
    deadline = as_utc(heartbeat_at) + timedelta(seconds=(interval_s or 15) * MISSED_BEATS_FOR_STOPPED)
    return "running" if utcnow() <= deadline else "stopped"


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def list_clusters(conn: Connection, after: str | None, limit: int) -> Page:
    stmt = page(select(clusters), [clusters.c.name, clusters.c.id], after, limit)
    rows, nxt = split_page(conn.execute(stmt).all(), lambda r: (r.name, r.id), limit)
    ids = [r.id for r in rows]
    node_counts = dict(
        conn.execute(select(nodes.c.cluster_id, func.count()).where(nodes.c.cluster_id.in_(ids)).group_by(nodes.c.cluster_id)).all()
    )
    pod_counts = dict(
        conn.execute(select(pods.c.cluster_id, func.count()).where(pods.c.cluster_id.in_(ids)).group_by(pods.c.cluster_id)).all()
    )
    items = [
        {
            "id": r.id,
            "name": r.name,
            "created_at": _iso(r.created_at),
            "last_seen_at": _iso(r.last_seen_at),
            "controller": {
                "status": controller_status(r.controller_heartbeat_at, r.controller_interval_s),
                "last_heartbeat_at": _iso(r.controller_heartbeat_at),
                "version": r.controller_version,
            },
            "nodes": node_counts.get(r.id, 0),
            "pods": pod_counts.get(r.id, 0),
        }
        for r in rows
    ]
    return Page(items, nxt)


def list_nodes(conn: Connection, cluster: str | None, after: str | None, limit: int) -> Page:
    stmt = select(nodes)
    if cluster:
        stmt = stmt.where(nodes.c.cluster_id == cluster)
    stmt = page(stmt, [nodes.c.cluster_id, nodes.c.name], after, limit)
    rows, nxt = split_page(conn.execute(stmt).all(), lambda r: (r.cluster_id, r.name), limit)
    beats = {}
    if rows:
        for b in conn.execute(
            select(sensors).where(sensors.c.cluster_id.in_({r.cluster_id for r in rows}), sensors.c.node_name.in_([r.name for r in rows]))
        ):
            beats[(b.cluster_id, b.node_name)] = b
    items = []
    for r in rows:
        d = r._asdict()
        d["updated_at"] = _iso(d["updated_at"])
        b = beats.get((r.cluster_id, r.name))
        d["sensor"] = {
            "status": sensor_status(r.sensor_disabled, b),
            "reported_status": b.status if b else None,
            "error": b.error if b else None,
            "version": b.version if b else None,
            "kernel": b.kernel if b else None,
            "btf": b.btf if b else None,
            "events_seen": b.events_seen if b else None,
            "events_lost": b.events_lost if b else None,
            "batches_spooled": b.batches_spooled if b else None,
            "batches_dropped": b.batches_dropped if b else None,
            "last_heartbeat_at": _iso(b.heartbeat_at) if b else None,
        }
        items.append(d)
    return Page(items, nxt)


def list_workloads(
    conn: Connection, cluster: str | None, namespace: str | None, kind: str | None, after: str | None, limit: int
) -> Page:
    stmt = select(workloads)
    if cluster:
        stmt = stmt.where(workloads.c.cluster_id == cluster)
    if namespace:
        stmt = stmt.where(workloads.c.namespace == namespace)
    if kind:
        stmt = stmt.where(workloads.c.kind == kind)
    key = [workloads.c.cluster_id, workloads.c.namespace, workloads.c.kind, workloads.c.name]
    rows, nxt = split_page(
        conn.execute(page(stmt, key, after, limit)).all(), lambda r: (r.cluster_id, r.namespace, r.kind, r.name), limit
    )
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
        d = r._asdict()
        d["updated_at"] = _iso(d["updated_at"])
        d["pods"] = counts.get((r.cluster_id, r.namespace, r.kind, r.name), 0)
        items.append(d)
    return Page(items, nxt)


def _image_dict(r) -> dict:
    ref = f"{r.registry}/{r.repository}" if r.registry else r.repository
    if r.tag:
        ref += f":{r.tag}"
    if r.digest:
        ref += f"@{r.digest}"
    return {
        "id": r.id,
        "ref": ref,
        "registry": r.registry,
        "repository": r.repository,
        "tag": r.tag or None,
        "digest": r.digest or None,
        "first_seen_at": _iso(r.first_seen_at),
    }


def list_pods(
    conn: Connection,
    cluster: str | None,
    namespace: str | None,
    node: str | None,
    workload_kind: str | None,
    workload_name: str | None,
    after: str | None,
    limit: int,
) -> Page:
    stmt = select(pods)
    for col, value in (
        (pods.c.cluster_id, cluster),
        (pods.c.namespace, namespace),
        (pods.c.node_name, node),
        (pods.c.workload_kind, workload_kind),
        (pods.c.workload_name, workload_name),
    ):
        if value:
            stmt = stmt.where(col == value)
    key = [pods.c.cluster_id, pods.c.namespace, pods.c.name, pods.c.uid]
    rows, nxt = split_page(
        conn.execute(page(stmt, key, after, limit)).all(), lambda r: (r.cluster_id, r.namespace, r.name, r.uid), limit
    )
    by_pod: dict[tuple[str, str], list[dict]] = {}
    if rows:
        cq = (
            select(containers, images.c.registry, images.c.repository, images.c.tag, images.c.digest)
            .join(images, images.c.id == containers.c.image_pk)
            .where(containers.c.cluster_id.in_({r.cluster_id for r in rows}), containers.c.pod_uid.in_([r.uid for r in rows]))
            .order_by(containers.c.pod_uid, containers.c.kind, containers.c.name)
        )
        for c in conn.execute(cq):
            by_pod.setdefault((c.cluster_id, c.pod_uid), []).append(
                {
                    "name": c.name,
                    "kind": c.kind,
                    "container_id": c.container_id,
                    "image": c.image,
                    "image_id": c.image_id,
                    "image_digest": c.image_digest,
                    "image_pk": c.image_pk,
                    "state": c.state,
                    "restart_count": c.restart_count,
                }
            )
    items = []
    for r in rows:
        items.append(
            {
                "cluster_id": r.cluster_id,
                "uid": r.uid,
                "namespace": r.namespace,
                "name": r.name,
                "node_name": r.node_name,
                "phase": r.phase,
                "service_account": r.service_account,
                "workload": {"kind": r.workload_kind, "name": r.workload_name},
                "labels": r.labels,
                "security": {
                    "privileged": r.privileged,
                    "host_pid": r.host_pid,
                    "host_network": r.host_network,
                    "host_ipc": r.host_ipc,
                    "run_as_non_root": r.run_as_non_root,
                    "run_as_user": r.run_as_user,
                    "added_capabilities": r.added_capabilities,
                },
                "containers": by_pod.get((r.cluster_id, r.uid), []),
                "updated_at": _iso(r.updated_at),
            }
        )
    return Page(items, nxt)


def image_usage(conn: Connection, image_ids: list[int]) -> dict[int, dict[str, int]]:
    """Blast radius per image: running containers, distinct workloads and clusters."""
    if not image_ids:
        return {}
    joined = (
        select(
            containers.c.image_pk,
            containers.c.cluster_id,
            pods.c.namespace,
            pods.c.workload_kind,
            pods.c.workload_name,
        )
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .where(containers.c.image_pk.in_(image_ids))
    )
    per_workload = joined.distinct().subquery()
    usage: dict[int, dict[str, int]] = {i: {"containers": 0, "workloads": 0, "clusters": 0} for i in image_ids}
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count()).where(containers.c.image_pk.in_(image_ids)).group_by(containers.c.image_pk)
    ):
        usage[image_pk]["containers"] = n
    for image_pk, n in conn.execute(
        select(per_workload.c.image_pk, func.count()).group_by(per_workload.c.image_pk)
    ):
        usage[image_pk]["workloads"] = n
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count(distinct(containers.c.cluster_id)))
        .where(containers.c.image_pk.in_(image_ids))
        .group_by(containers.c.image_pk)
    ):
        usage[image_pk]["clusters"] = n
    return usage


def list_images(
    conn: Connection,
    cluster: str | None,
    registry: str | None,
    repository: str | None,
    running_only: bool,
    after: str | None,
    limit: int,
) -> Page:
    stmt = select(images)
    if registry:
        stmt = stmt.where(images.c.registry == registry)
    if repository:
        stmt = stmt.where(images.c.repository == repository)
    if cluster:
        stmt = stmt.where(
            images.c.id.in_(select(containers.c.image_pk).where(containers.c.cluster_id == cluster))
        )
    elif running_only:
        stmt = stmt.where(images.c.id.in_(select(containers.c.image_pk)))
    rows = conn.execute(page(stmt, [images.c.id], after, limit)).all()
    rows, nxt = split_page(rows, lambda r: (r.id,), limit)
    usage = image_usage(conn, [r.id for r in rows])
    items = []
    for r in rows:
        d = _image_dict(r)
        d["usage"] = usage[r.id]
        items.append(d)
    return Page(items, nxt)


FINDING_STATUSES = ("open", "resolved", "suppressed")
SEVERITIES = ("critical", "high", "medium", "low", "info", "unknown")


def _finding_dict(r) -> dict:
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
        "first_seen_at": _iso(r.first_seen_at),
        "last_seen_at": _iso(r.last_seen_at),
        "status_changed_at": _iso(r.status_changed_at),
    }


def list_findings(
    conn: Connection,
    cluster: str | None,
    namespace: str | None,
    severities: list[str],
    types: list[str],
    statuses: list[str],
    after: str | None,
    limit: int,
) -> Page:
    stmt = select(findings)
    if cluster:
        stmt = stmt.where(findings.c.cluster_id == cluster)
    if namespace:
        stmt = stmt.where(findings.c.namespace == namespace)
    if severities:
        stmt = stmt.where(findings.c.severity.in_(severities))
    if types:
        stmt = stmt.where(findings.c.type.in_(types))
    if statuses:
        stmt = stmt.where(findings.c.status.in_(statuses))
    rows, nxt = split_page(conn.execute(page(stmt, [findings.c.id], after, limit)).all(), lambda r: (r.id,), limit)
    return Page([_finding_dict(r) for r in rows], nxt)


def get_finding(conn: Connection, finding_id: int) -> dict | None:
    row = conn.execute(select(findings).where(findings.c.id == finding_id)).first()
    if row is None:
        return None
    d = _finding_dict(row)
    d["history"] = [
        {
            "at": _iso(e.at),
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
    stmt = select(findings.c.type, findings.c.severity, func.count()).where(findings.c.status == "open")
    if cluster:
        stmt = stmt.where(findings.c.cluster_id == cluster)
    out: dict[str, dict[str, int]] = {}
    for t, s, n in conn.execute(stmt.group_by(findings.c.type, findings.c.severity)):
        out.setdefault(t, {})[s] = n
    return out


def list_executions(
    conn: Connection,
    cluster: str | None,
    node: str | None,
    container_id: str | None,
    pod_uid: str | None,
    sha256: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
) -> Page:
    """Runtime records with the pod and workload they ran in, when the inventory knows the container."""
    stmt = select(
        executions,
        pods.c.namespace,
        pods.c.name.label("pod_name"),
        pods.c.workload_kind,
        pods.c.workload_name,
        containers.c.name.label("container_name"),
        containers.c.image,
        containers.c.image_digest,
    ).select_from(
        executions.outerjoin(
            containers,
            (containers.c.cluster_id == executions.c.cluster_id) & (containers.c.container_id == executions.c.container_id) & (executions.c.container_id != ""),
        ).outerjoin(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
    )
    for col, value in (
        (executions.c.cluster_id, cluster),
        (executions.c.node_name, node),
        (executions.c.container_id, container_id),
        (executions.c.pod_uid, pod_uid),
        (executions.c.sha256, sha256),
        (executions.c.kind, kind),
    ):
        if value:
            stmt = stmt.where(col == value)
    rows, nxt = split_page(conn.execute(page(stmt, [executions.c.id], after, limit)).all(), lambda r: (r.id,), limit)
    items = [
        {
            "id": r.id,
            "cluster_id": r.cluster_id,
            "node_name": r.node_name,
            "container_id": r.container_id or None,
            "pod_uid": r.pod_uid,
            "kind": r.kind,
            "path": r.path,
            "sha256": r.sha256 or None,
            "count": r.count,
            "first_seen_at": _iso(r.first_seen_at),
            "last_seen_at": _iso(r.last_seen_at),
            "samples": r.samples,
            "pod": {"namespace": r.namespace, "name": r.pod_name} if r.pod_name else None,
            "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_kind else None,
            "container": {"name": r.container_name, "image": r.image, "image_digest": r.image_digest} if r.container_name else None,
        }
        for r in rows
    ]
    return Page(items, nxt)
