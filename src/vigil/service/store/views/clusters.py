"""Clusters with their controller's status, node and pod counts and risk."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from vigil.clock import as_utc, utcnow
from vigil.service.store import risk as risk_store
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import clusters, nodes, pods
from vigil.service.store.views.common import Page, iso

MISSED_BEATS_FOR_STOPPED = 3
BY_NAME = Sort(((clusters.c.name, "str"), (clusters.c.id, "str")))


def controller_status(heartbeat_at: datetime | None, interval_s: int | None) -> str:
    if heartbeat_at is None:
        return "never_seen"
    deadline = as_utc(heartbeat_at) + timedelta(seconds=(interval_s or 15) * MISSED_BEATS_FOR_STOPPED)
    return "running" if utcnow() <= deadline else "stopped"


# The cluster's connection as a person reads it, from its controller's heartbeats: a cluster made for a
# registration, or just registered, is pending until its controller's first heartbeat.
CONNECTION = {"never_seen": "pending", "running": "connected", "stopped": "disconnected"}


def list_clusters(conn: Connection, after: str | None, limit: int, risk: risk_store.OpenRisk | None = None) -> Page:
    """Clusters by name. Risk comes from ``risk`` when the caller scored every open finding already
    (the overview), else from the page's own clusters."""
    rows, nxt = keyset_rows(conn, select(clusters), BY_NAME, after, limit)
    ids = [r.id for r in rows]
    node_counts: dict[str, int] = dict(
        conn.execute(
            select(nodes.c.cluster_id, func.count()).where(nodes.c.cluster_id.in_(ids)).group_by(nodes.c.cluster_id)
        ).all()
    )
    pod_counts: dict[str, int] = dict(
        conn.execute(
            select(pods.c.cluster_id, func.count()).where(pods.c.cluster_id.in_(ids)).group_by(pods.c.cluster_id)
        ).all()
    )
    if risk is None:
        risks = risk_store.cluster_risk(conn, ids)
    else:
        risks = {i: risk.clusters.get(i) or risk_store.rollup([]) for i in ids}
    states = {r.id: controller_status(r.controller_heartbeat_at, r.controller_interval_s) for r in rows}
    items = [
        {
            "id": r.id,
            "name": r.name,
            "created_at": iso(r.created_at),
            "last_seen_at": iso(r.last_seen_at),
            "status": CONNECTION[states[r.id]],
            "controller": {
                "status": states[r.id],
                "last_heartbeat_at": iso(r.controller_heartbeat_at),
                "version": r.controller_version,
            },
            "nodes": node_counts.get(r.id, 0),
            "pods": pod_counts.get(r.id, 0),
            "risk": risks[r.id],
        }
        for r in rows
    ]
    return Page(items, nxt)
