"""Clusters: registration, heartbeats, last-seen."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from vigil.clock import utcnow
from vigil.service.store.schema import clusters
from vigil.service.store.tokens import IssuedToken, issue_token

# A cluster's name: what its controller registers as (also a Helm value and part of file names).
CLUSTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"


def ensure_cluster(conn: Connection, name: str) -> str:
    """The id of the cluster named ``name``, made now if there is none (it is pending until its
    controller's first heartbeat)."""
    row = conn.execute(select(clusters.c.id).where(clusters.c.name == name)).first()
    if row is not None:
        return str(row.id)
    cluster_id = str(uuid.uuid4())
    conn.execute(clusters.insert().values(id=cluster_id, name=name, created_at=utcnow()))
    return cluster_id


def register_cluster(conn: Connection, name: str) -> tuple[str, IssuedToken]:
    """Return the cluster's id (new, or the existing one for that name) and a fresh credential.

    Re-registering a name keeps its id, so a controller that lost its credential file
    reports into the same inventory rather than a duplicate cluster.
    """
    cluster_id = ensure_cluster(conn, name)
    credential = issue_token(conn, role="cluster", name=f"cluster:{name}", cluster_id=cluster_id)
    return cluster_id, credential


def cluster_for_registration(
    conn: Connection, name: str, ttl: timedelta, max_uses: int | None, token_name: str | None = None
) -> tuple[str, IssuedToken]:
    """Make the cluster ``name`` ahead of its registration and a registration token bound to it
    (it registers that cluster only): what "connect a cluster" hands to the installer."""
    cluster_id = ensure_cluster(conn, name)
    token_name = token_name or f"connect:{name}"
    token = issue_token(conn, role="registration", name=token_name, cluster_id=cluster_id, ttl=ttl, max_uses=max_uses)
    return cluster_id, token


def cluster_name(conn: Connection, cluster_id: str) -> str | None:
    return conn.execute(select(clusters.c.name).where(clusters.c.id == cluster_id)).scalar_one_or_none()


# How many known names an unknown-cluster error lists: enough to spot a typo, bounded for big fleets.
KNOWN_NAMES_SHOWN = 20


class UnknownCluster(LookupError):
    """A cluster id or name that no registered cluster has; the message lists the known names."""

    def __init__(self, key: str, known: list[str]) -> None:
        shown = ", ".join(known[:KNOWN_NAMES_SHOWN]) + (", …" if len(known) > KNOWN_NAMES_SHOWN else "")
        known_text = f"known: {shown}" if known else "no cluster is"
        super().__init__(f"cluster {key!r} is not registered ({known_text})")
        self.key = key
        self.known = known


def resolve_cluster(conn: Connection, key: str) -> str:
    """The id of the cluster whose id or name is ``key``; an id wins over another cluster's equal name."""
    by_id = conn.execute(select(clusters.c.id).where(clusters.c.id == key)).scalar_one_or_none()
    if by_id is not None:
        return str(by_id)
    by_name = conn.execute(select(clusters.c.id).where(clusters.c.name == key)).scalar_one_or_none()
    if by_name is not None:
        return str(by_name)
    known = conn.execute(select(clusters.c.name).order_by(clusters.c.name).limit(KNOWN_NAMES_SHOWN + 1)).scalars()
    raise UnknownCluster(key, [str(n) for n in known])


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
