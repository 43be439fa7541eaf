"""Clusters: registration, heartbeats, last-seen."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, select, update

from vigil.clock import utcnow
from vigil.service.store.schema import clusters
from vigil.service.store.tokens import IssuedToken, issue_token


def register_cluster(conn: Connection, name: str) -> tuple[str, IssuedToken]:
    """Return the cluster's id (new, or the existing one for that name) and a fresh credential.

    Re-registering a name keeps its id, so a controller that lost its credential file
    reports into the same inventory rather than a duplicate cluster.
    """
    row = conn.execute(select(clusters.c.id).where(clusters.c.name == name)).first()
    if row is None:
        cluster_id = str(uuid.uuid4())
        conn.execute(clusters.insert().values(id=cluster_id, name=name, created_at=utcnow()))
    else:
        cluster_id = row.id
    credential = issue_token(conn, role="cluster", name=f"cluster:{name}", cluster_id=cluster_id)
    return cluster_id, credential


def cluster_exists(conn: Connection, cluster_id: str) -> bool:
    return conn.execute(select(clusters.c.id).where(clusters.c.id == cluster_id)).first() is not None


def touch(conn: Connection, cluster_id: str, at: datetime | None = None) -> None:
    conn.execute(update(clusters).where(clusters.c.id == cluster_id).values(last_seen_at=at or utcnow()))


def record_controller_heartbeat(conn: Connection, cluster_id: str, version: str, interval_s: int) -> None:
    now = utcnow()
    conn.execute(
        update(clusters)
        .where(clusters.c.id == cluster_id)
        .values(
            last_seen_at=now,
            controller_heartbeat_at=now,
            controller_interval_s=interval_s,
            controller_version=version,
        )
    )
