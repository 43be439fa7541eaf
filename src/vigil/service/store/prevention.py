"""Runtime prevention in the store: the deny list with its history, each node's runtime policy computed from the
policy in force and the node's running containers, what sensors prevented (merged per container, rule, mode,
operation and path) and the findings it raises, and each node's enforcement state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, true, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc, utcnow
from vigil.policy.prevention import (
    Cluster,
    RunningContainer,
    active_entries,
    container_rules,
    node_policy,
    policy_for,
)
from vigil.service.analysis.runtime.prevention import PreventionContext, dedup_key, detection
from vigil.service.store import findings as finding_store
from vigil.service.store.chunks import chunks
from vigil.service.store.drift import ContainerImage, container_drift
from vigil.service.store.drift import marker as drift_marker
from vigil.service.store.enforcement import load_enforcement
from vigil.service.store.load_watch import marker as load_watch_marker
from vigil.service.store.load_watch import node_load_watch, with_load_watch
from vigil.service.store.runtime import sensor_status
from vigil.service.store.schema import (
    clusters,
    containers,
    deny_list,
    deny_list_changes,
    enforcement_policy_revisions,
    images,
    nodes,
    pods,
    preventions,
    sensors,
    workloads,
)
from vigil.wire.base import INT64_MAX
from vigil.wire.prevention import MAX_DENY_LIST, MAX_SAMPLES, NodeRuntimePolicy, PreventionRecord
from vigil.wire.runtime import RuntimeBatch

log = logging.getLogger(__name__)
ACTOR = "prevention"
MAX_REASON = 1024
MAX_HISTORY = 500


class DenyListFull(ValueError):
    pass


# -- the deny list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenyEntry:
    sha256: str
    reason: str
    added_by: str
    added_at: datetime


@dataclass(frozen=True)
class DenyChange:
    sha256: str
    change: str  # added | removed
    reason: str
    at: datetime
    by: str


def deny_entries(conn: Connection) -> list[DenyEntry]:
    t = deny_list.c
    rows = conn.execute(select(deny_list).order_by(t.added_at.desc(), t.sha256)).all()
    return [DenyEntry(r.sha256, r.reason, r.added_by, as_utc(r.added_at)) for r in rows]


def deny_sha256s(conn: Connection) -> list[str]:
    return list(conn.execute(select(deny_list.c.sha256).order_by(deny_list.c.sha256)).scalars())


def add_denied(conn: Connection, sha256: str, reason: str, actor: str) -> DenyEntry | None:
    """Put ``sha256`` on the deny list; None when it is already there (its first reason stays)."""
    if conn.execute(select(deny_list.c.sha256).where(deny_list.c.sha256 == sha256)).first() is not None:
        return None
    count = len(conn.execute(select(deny_list.c.sha256).limit(MAX_DENY_LIST)).all())
    if count >= MAX_DENY_LIST:
        raise DenyListFull(f"the deny list holds {MAX_DENY_LIST} sha256s, its limit; remove some first")
    now = utcnow()
    conn.execute(deny_list.insert().values(sha256=sha256, reason=reason, added_by=actor, added_at=now))
    conn.execute(deny_list_changes.insert().values(sha256=sha256, change="added", reason=reason, at=now, by=actor))
    log.info("deny list: sha256 added", extra={"sha256": sha256, "actor": actor})
    return DenyEntry(sha256, reason, actor, now)


def remove_denied(conn: Connection, sha256: str, actor: str, reason: str = "") -> bool:
    if not conn.execute(delete(deny_list).where(deny_list.c.sha256 == sha256)).rowcount:
        return False
    conn.execute(
        deny_list_changes.insert().values(sha256=sha256, change="removed", reason=reason, at=utcnow(), by=actor)
    )
    log.info("deny list: sha256 removed", extra={"sha256": sha256, "actor": actor})
    return True


def deny_history(conn: Connection, limit: int = 50) -> list[DenyChange]:
    t = deny_list_changes.c
    rows = conn.execute(select(deny_list_changes).order_by(t.id.desc()).limit(limit)).all()
    return [DenyChange(r.sha256, r.change, r.reason, as_utc(r.at), r.by) for r in rows]


# -- a node's runtime policy -------------------------------------------------------------------------


def running_containers(conn: Connection, cluster_id: str, node_name: str) -> list[RunningContainer]:
    """The containers the inventory says run on the node, with their namespace, pod, workload and labels."""
    return [rc for rc, _, _ in _running(conn, cluster_id, pods.c.node_name == node_name)]


def _running(conn: Connection, cluster_id: str, where: Any) -> list[tuple[RunningContainer, str, str | None]]:
    """(container, its name, its node) for each running container of the cluster that ``where`` selects."""
    c, p, w = containers.c, pods.c, workloads.c
    stmt = (
        select(
            c.name.label("container_name"),
            p.node_name,
            c.container_id,
            p.uid,
            p.namespace,
            p.name,
            p.workload_kind,
            p.workload_name,
            p.labels.label("pod_labels"),
            w.labels.label("workload_labels"),
            c.image_pk,
            images.c.digest,
        )
        .join(pods, (p.cluster_id == c.cluster_id) & (p.uid == c.pod_uid))
        .join(images, images.c.id == c.image_pk)
        .outerjoin(
            workloads,
            (w.cluster_id == p.cluster_id)
            & (w.namespace == p.namespace)
            & (w.kind == p.workload_kind)
            & (w.name == p.workload_name),
        )
        .where(c.cluster_id == cluster_id, where, c.state == "running", c.container_id.is_not(None))
        .order_by(p.name, c.name)
    )
    rows = conn.execute(stmt).all()
    drift = container_drift(
        conn,
        cluster_id,
        (
            ContainerImage(r.container_id, r.image_pk, r.digest, r.namespace, r.workload_kind, r.workload_name)
            for r in rows
        ),
    )
    return [
        (
            RunningContainer(
                container_id=r.container_id,
                namespace=r.namespace,
                pod_name=r.name,
                pod_uid=r.uid,
                workload=f"{r.workload_kind}/{r.workload_name}" if r.workload_kind else "",
                labels={**(r.workload_labels or {}), **(r.pod_labels or {})},
                drift_sha256=drift.get(r.container_id, frozenset()),
            ),
            r.container_name,
            r.node_name,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class EnforcedContainer:
    pod_name: str
    container_name: str
    container_id: str
    node_name: str | None
    rules: dict[str, str]  # rule -> enforce | audit, for the rules that are on
    policies: dict[str, str]  # rule -> the policy that set it


def workload_enforcement(
    conn: Connection, cluster_id: str, namespace: str, kind: str, name: str
) -> list[EnforcedContainer]:
    """What runtime prevention enforces in each running container of one workload, by the policy in force."""
    p = pods.c
    where = (p.namespace == namespace) & (p.workload_kind == kind) & (p.workload_name == name)
    policy = load_enforcement(conn).policy
    cluster = cluster_of(conn, cluster_id)
    active = active_entries(policy)
    out: list[EnforcedContainer] = []
    for rc, container_name, node in _running(conn, cluster_id, where):
        rules, names = container_rules(policy, cluster, rc, active)
        out.append(
            EnforcedContainer(
                rc.pod_name,
                container_name,
                rc.container_id,
                node,
                {str(k): v for k, v in sorted(rules.items())},
                {str(k): v for k, v in sorted(names.items())},
            )
        )
    return out


def cluster_of(conn: Connection, cluster_id: str) -> Cluster:
    name = conn.execute(select(clusters.c.name).where(clusters.c.id == cluster_id)).scalar()
    return Cluster(cluster_id, name or "")


def inventory_changed(conn: Connection, cluster_id: str) -> None:
    """Mark the cluster's inventory as changed (in the batch's transaction): held sensor requests recompute."""
    conn.execute(update(clusters).where(clusters.c.id == cluster_id).values(inventory_changed_at=utcnow()))


def change_marker(conn: Connection, cluster_id: str) -> tuple[Any, ...]:
    """What a node's runtime policy is computed from, cheaply: the policy's latest row, the deny list's latest
    change, when the cluster's inventory last changed and the latest finding event (the load watch follows the
    open package findings, the drift sha256s the open drift findings). The same marker means the same policy."""
    t, d = enforcement_policy_revisions.c, deny_list_changes.c
    return (
        conn.execute(select(func.max(t.id))).scalar(),
        conn.execute(select(func.max(d.id))).scalar(),
        conn.execute(select(clusters.c.inventory_changed_at).where(clusters.c.id == cluster_id)).scalar(),
        load_watch_marker(conn),
        drift_marker(conn),
    )


def compute_node_policy(conn: Connection, cluster_id: str, node_name: str) -> NodeRuntimePolicy:
    """The runtime policy of one node, from the policy in force, the node's running containers, the deny list
    and the package files to watch being loaded."""
    policy = node_policy(
        load_enforcement(conn).policy,
        cluster_of(conn, cluster_id),
        node_name,
        running_containers(conn, cluster_id, node_name),
        deny_sha256s(conn),
        utcnow(),
    )
    return with_load_watch(policy, node_load_watch(conn, cluster_id, node_name))


# -- what sensors prevented ---------------------------------------------------------------------------

_KEY = (
    preventions.c.container_id,
    preventions.c.rule,
    preventions.c.mode,
    preventions.c.operation,
    preventions.c.path,
)


def _key(r: PreventionRecord) -> tuple[str, str, str, str, str]:
    return (r.container_id or "", str(r.rule), r.mode, r.operation, r.path)


def _merge(conn: Connection, batch: RuntimeBatch) -> tuple[int, int]:
    """Insert the batch's preventions that are new, merge the others (count added, first/last seen widened,
    the first samples kept, the newest sha256 and policy revision): (new, merged)."""
    keyed = [(_key(r), r) for r in batch.preventions]
    existing = _stored(conn, batch.cluster_id, [k for k, _ in keyed])
    inserts: list[dict[str, Any]] = []
    merged = 0
    for key, r in keyed:
        samples = [s.model_dump(mode="json") for s in r.samples]
        stored = existing.get(key)
        if stored is None:
            inserts.append(
                dict(
                    cluster_id=batch.cluster_id,
                    node_name=batch.node_name,
                    container_id=key[0],
                    pod_uid=r.pod_uid,
                    rule=key[1],
                    mode=r.mode,
                    operation=r.operation,
                    path=r.path,
                    killed=r.killed,
                    sha256=r.sha256,
                    upper_layer=r.upper_layer,
                    policy_revision=r.policy_revision,
                    first_seen_at=r.first_seen,
                    last_seen_at=r.last_seen,
                    count=r.count,
                    samples=samples[:MAX_SAMPLES],
                )
            )
            continue
        conn.execute(
            update(preventions)
            .where(preventions.c.id == stored.id)
            .values(
                count=min(stored._mapping["count"] + r.count, INT64_MAX),
                first_seen_at=min(as_utc(stored.first_seen_at), r.first_seen),
                last_seen_at=max(as_utc(stored.last_seen_at), r.last_seen),
                pod_uid=stored.pod_uid or r.pod_uid,
                node_name=batch.node_name,
                killed=stored.killed or r.killed,
                sha256=r.sha256 or stored.sha256,
                upper_layer=stored.upper_layer if r.upper_layer is None else r.upper_layer,
                policy_revision=r.policy_revision,
                samples=(list(stored.samples) + samples)[:MAX_SAMPLES],
            )
        )
        merged += 1
    if inserts:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(preventions), inserts)
    return len(inserts), merged


def _contexts(conn: Connection, cluster_id: str, node_name: str, ids: Iterable[str]) -> dict[str, PreventionContext]:
    c, p, i = containers.c, pods.c, images.c
    wanted = sorted(set(ids))
    out: dict[str, PreventionContext] = {}
    for chunk in chunks(wanted):
        stmt = (
            select(
                c.container_id,
                c.name,
                c.image_pk,
                c.image,
                p.namespace,
                p.name.label("pod_name"),
                p.workload_kind,
                p.workload_name,
            )
            .join(pods, (p.cluster_id == c.cluster_id) & (p.uid == c.pod_uid))
            .join(images, i.id == c.image_pk)
            .where(c.cluster_id == cluster_id, c.container_id.in_(chunk))
        )
        for r in conn.execute(stmt):
            out[r.container_id] = PreventionContext(
                cluster_id=cluster_id,
                node_name=node_name,
                namespace=r.namespace,
                pod_name=r.pod_name,
                container_name=r.name,
                workload_kind=r.workload_kind,
                workload_name=r.workload_name,
                image_pk=r.image_pk,
                image=r.image,
            )
    return out


def apply_preventions(conn: Connection, batch: RuntimeBatch) -> dict[str, int]:
    """Store the batch's preventions and open or refresh their findings, in the batch's transaction."""
    if not batch.preventions:
        return {}
    new, merged = _merge(conn, batch)
    contexts = _contexts(
        conn, batch.cluster_id, batch.node_name, [r.container_id for r in batch.preventions if r.container_id]
    )
    # The policy that set each rule: the service's own computation of the node's policy now (the sensor's
    # revision says which one it enforced).
    node = compute_node_policy(conn, batch.cluster_id, batch.node_name)
    stored = _stored(conn, batch.cluster_id, [_key(r) for r in batch.preventions])
    for r in batch.preventions:
        base = contexts.get(r.container_id or "") or PreventionContext(batch.cluster_id, batch.node_name)
        where = replace(base, policy=policy_for(node, r.container_id, r.rule))
        # The finding tells the whole story so far: the merged count and window, the sha256 once hashed.
        row = stored[_key(r)]
        merged_record = r.model_copy(
            update={
                "count": row._mapping["count"],
                "first_seen": as_utc(row.first_seen_at),
                "last_seen": as_utc(row.last_seen_at),
                "sha256": row.sha256,
                "killed": row.killed,
            }
        )
        d = detection(merged_record, where)
        obs = finding_store.Observation(
            dedup_key=dedup_key(d, where),
            type=d.type,
            severity=d.severity,
            subject=d.subject,
            evidence=d.evidence,
            cluster_id=batch.cluster_id,
            namespace=where.namespace,
            workload_kind=where.workload_kind,
            workload_name=where.workload_name,
            image_pk=where.image_pk,
            subject_key=d.key,
        )
        finding_store.observe(conn, obs, actor=ACTOR)
    return {"preventions": len(batch.preventions), "preventions_new": new, "preventions_merged": merged}


def _stored(conn: Connection, cluster_id: str, keys: list[tuple[str, str, str, str, str]]) -> dict[tuple, Row[Any]]:
    out: dict[tuple, Row[Any]] = {}
    for chunk in chunks(sorted(set(keys))):
        stmt = select(preventions).where(preventions.c.cluster_id == cluster_id, tuple_(*_KEY).in_(chunk))
        for row in conn.execute(stmt):
            out[(row.container_id, row.rule, row.mode, row.operation, row.path)] = row
    return out


# -- enforcement state of the nodes ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeEnforcement:
    cluster_id: str
    node_name: str
    state: str  # enforcing | lagging | off
    current_revision: str
    sensor_revision: str | None
    in_scope: int  # containers with at least one rule on
    reason: str  # why off or lagging, for people

    @property
    def loud(self) -> bool:
        """Prevention fails open here while containers are in scope."""
        return self.state in ("off", "lagging") and self.in_scope > 0


def enforcement_state(
    node: NodeRuntimePolicy, sensor_row, sensor_disabled: bool, now: datetime | None = None
) -> tuple[str, str]:
    """(state, reason) of one node: ``enforcing`` the current revision, ``lagging`` behind it, or ``off`` (sensor
    down, disabled, no revision loaded, or an enforcement error)."""
    status = sensor_status(sensor_disabled, sensor_row, now)
    if status != "monitored_with_sensor":
        what = {
            "disabled": "the sensor is disabled on this node",
            "monitored": "no sensor has reported from this node",
            "sensor_failed": "the sensor stopped beating or failed",
        }[status]
        return "off", what
    if sensor_row.enforcement_error:
        return "off", f"the sensor cannot enforce: {sensor_row.enforcement_error}"
    if not sensor_row.policy_revision:
        return "off", "the sensor holds no runtime policy"
    if sensor_row.policy_revision != node.revision:
        return (
            "lagging",
            f"the sensor enforces revision {sensor_row.policy_revision}, the current one is {node.revision}",
        )
    return "enforcing", f"the sensor enforces revision {node.revision}"


def node_enforcement(conn: Connection, cluster_id: str | None = None) -> list[NodeEnforcement]:
    """The enforcement state of every node the inventory or a sensor knows (one cluster's, or all)."""
    keys: set[tuple[str, str]] = set()
    disabled: dict[tuple[str, str], bool] = {}
    ns = select(nodes.c.cluster_id, nodes.c.name, nodes.c.sensor_disabled)
    ss = select(sensors)
    if cluster_id is not None:
        ns = ns.where(nodes.c.cluster_id == cluster_id)
        ss = ss.where(sensors.c.cluster_id == cluster_id)
    for r in conn.execute(ns):
        keys.add((r.cluster_id, r.name))
        disabled[(r.cluster_id, r.name)] = bool(r.sensor_disabled)
    beats = {(b.cluster_id, b.node_name): b for b in conn.execute(ss)}
    keys |= set(beats)
    policy = load_enforcement(conn).policy
    deny = deny_sha256s(conn)
    now = utcnow()
    # One read of each cluster's running containers, grouped by node (none when no policy has runtime rules).
    running: dict[tuple[str, str | None], list[RunningContainer]] = {}
    if any(entry.runtime.on() for entry in policy.policies):
        for cid in sorted({k[0] for k in keys}):
            for rc, _, node_name in _running(conn, cid, true()):
                running.setdefault((cid, node_name), []).append(rc)
    clusters_by_id = {cid: cluster_of(conn, cid) for cid in {k[0] for k in keys}}
    out: list[NodeEnforcement] = []
    for cid, name in sorted(keys):
        node = node_policy(policy, clusters_by_id[cid], name, running.get((cid, name), []), deny, now)
        node = with_load_watch(node, node_load_watch(conn, cid, name))
        beat = beats.get((cid, name))
        state, reason = enforcement_state(node, beat, disabled.get((cid, name), False), now)
        out.append(
            NodeEnforcement(
                cid, name, state, node.revision, beat.policy_revision if beat else None, len(node.containers), reason
            )
        )
    return out
