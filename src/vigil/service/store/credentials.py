"""Clusters' credentials: registration with a token, listing, rotation with an overlap, revocation.

A registration token either creates a new cluster (unbound) or registers the one cluster it was made
for (bound, which only an admin can issue); it never hands out a credential for another existing cluster.

A cluster's sensors do not share its (controller's) credential: an enrolment credential, issued to an
admin or the cluster's controller, enrols a node's sensor, which gets a sensor credential bound to that
node. Each kind is rotated with the same overlap as the cluster credential.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select, update

from vigil.clock import as_utc, utcnow
from vigil.service.store.clusters import cluster_name, register_cluster
from vigil.service.store.schema import api_tokens, clusters
from vigil.service.store.tokens import CLUSTER_ROLES, IssuedToken, Principal, count_use, issue_token

# How long a replaced credential still works, so running controllers and sensors roll over without loss.
DEFAULT_OVERLAP = timedelta(minutes=10)


class RegistrationRefused(Exception):
    """Registration is not allowed; ``status`` is the HTTP answer it maps to, the message says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def register_with_token(
    conn: Connection, token: Principal, name: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[str, IssuedToken]:
    """Count one use of ``token`` and register cluster ``name`` with it: (cluster id, fresh credential).

    Re-registering an existing cluster (with a token bound to it) replaces its credentials: the old
    ones keep working for ``overlap`` only.
    """
    if token.cluster_id is not None:
        bound = cluster_name(conn, token.cluster_id)
        if bound != name:
            raise RegistrationRefused(403, f"this registration token registers cluster {bound!r} only, not {name!r}")
    elif conn.execute(select(clusters.c.id).where(clusters.c.name == name)).first() is not None:
        raise RegistrationRefused(
            409,
            f"cluster {name!r} is already registered; this registration token can only create a new cluster. "
            "Re-registering it needs a registration token bound to that cluster, issued by an admin "
            f"(POST /api/v1/clusters/registration-tokens with cluster_name {name!r}, or `vigil cluster install "
            f"--name {name}`)",
        )
    if not count_use(conn, token.token_id):
        raise RegistrationRefused(401, f"token {token.token_id} has no use left (limit reached, expired or revoked)")
    _expire_active(conn, _cluster_id_of(conn, name), overlap)
    return register_cluster(conn, name)


def _cluster_id_of(conn: Connection, name: str) -> str | None:
    return conn.execute(select(clusters.c.id).where(clusters.c.name == name)).scalar_one_or_none()


def _expire_active(
    conn: Connection, cluster_id: str | None, overlap: timedelta, role: str = "cluster", node_name: str | None = None
) -> datetime:
    """Let the cluster's live credentials of ``role`` (for ``node_name``, if given) run for ``overlap``
    more at most (never extend one); until when."""
    until = utcnow() + overlap
    if cluster_id is None:
        return until
    t = api_tokens.c
    where = [
        t.role == role,
        t.cluster_id == cluster_id,
        t.revoked_at.is_(None),
        or_(t.expires_at.is_(None), t.expires_at > until),
    ]
    if node_name is not None:
        where.append(t.node_name == node_name)
    conn.execute(update(api_tokens).where(*where).values(expires_at=until))
    return until


def _issue_cluster_bound(
    conn: Connection, cluster_id: str, role: str, name: str, overlap: timedelta
) -> tuple[IssuedToken, datetime]:
    if cluster_name(conn, cluster_id) is None:
        raise LookupError(f"cluster {cluster_id!r} is not registered")
    until = _expire_active(conn, cluster_id, overlap, role)
    return issue_token(conn, role=role, name=name, cluster_id=cluster_id), until


def issue_enrolment(
    conn: Connection, cluster_id: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[IssuedToken, datetime]:
    """A new enrolment credential for the cluster's sensors, and when its earlier ones stop working."""
    return _issue_cluster_bound(conn, cluster_id, "enrolment", "sensor-enrolment", overlap)


def issue_admission(
    conn: Connection, cluster_id: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[IssuedToken, datetime]:
    """A new credential for the cluster's admission webhooks, and when its earlier ones stop working."""
    return _issue_cluster_bound(conn, cluster_id, "admission", "admission", overlap)


def enrol_sensor(
    conn: Connection, cluster_id: str, node_name: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[IssuedToken, datetime]:
    """A sensor credential for ``node_name`` of the cluster; the node's earlier ones work for ``overlap``."""
    until = _expire_active(conn, cluster_id, overlap, "sensor", node_name)
    return issue_token(conn, role="sensor", name="sensor", cluster_id=cluster_id, node_name=node_name), until


def list_credentials(conn: Connection, cluster_id: str) -> list[dict]:
    """The cluster's credentials (controller, enrolment, sensors' and admission webhooks'), oldest first, with
    whether each still works (never their secrets)."""
    t = api_tokens.c
    rows = conn.execute(
        select(t.id, t.name, t.role, t.node_name, t.cluster_id, t.created_at, t.expires_at, t.revoked_at)
        .where(t.role.in_(CLUSTER_ROLES), t.cluster_id == cluster_id)
        .order_by(t.created_at, t.id)
    ).all()
    now = utcnow()
    out = []
    for r in rows:
        expires_at, revoked_at = as_utc(r.expires_at), as_utc(r.revoked_at)
        if revoked_at is not None:
            state = "revoked"
        elif expires_at is not None and expires_at <= now:
            state = "expired"
        elif expires_at is not None:
            state = "expiring"
        else:
            state = "active"
        out.append(
            {
                "id": r.id,
                "name": r.name,
                "kind": r.role,
                "node": r.node_name,
                "cluster_id": r.cluster_id,
                "created_at": as_utc(r.created_at),
                "expires_at": expires_at,
                "revoked_at": revoked_at,
                "state": state,
            }
        )
    return out


def rotate_credentials(
    conn: Connection, cluster_id: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[IssuedToken, datetime]:
    """A new credential for the cluster, and when its other live credentials stop working (``overlap`` on)."""
    name = cluster_name(conn, cluster_id)
    if name is None:
        raise LookupError(f"cluster {cluster_id!r} is not registered")
    until = _expire_active(conn, cluster_id, overlap)
    return register_cluster(conn, name)[1], until


def revoke_credential(conn: Connection, cluster_id: str, token_id: str) -> bool:
    """Revoke one of the cluster's credentials (of any kind) now; False if it has no such live credential."""
    t = api_tokens.c
    result = conn.execute(
        update(api_tokens)
        .where(t.id == token_id, t.role.in_(CLUSTER_ROLES), t.cluster_id == cluster_id, t.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount == 1
