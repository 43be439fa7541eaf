"""API tokens: users' (admin, viewer), metrics scrapers', clusters' credentials, registration tokens,
sensors' (an enrolment credential per cluster, and one sensor credential per node) and admission webhooks'.

Only a sha256 of each secret is stored; the secret itself is shown once, when made.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select, update

from vigil.clock import as_utc, utcnow
from vigil.service.store.schema import api_tokens

USER_ROLES = ("admin", "viewer")
# A metrics token reads /metrics and nothing else: a scraper's credential is no wider than its job.
# An enrolment credential only enrols its cluster's sensors; a sensor credential only writes its own
# node's runtime records and heartbeats: a compromised node holds nothing that rewrites the inventory.
# An admission credential reads its cluster's admission feed and records its webhooks' decisions, no more.
CLUSTER_ROLES = ("cluster", "enrolment", "sensor", "admission")
ROLES = USER_ROLES + ("metrics", "registration") + CLUSTER_ROLES
_PREFIX = {
    "admin": "vgl_u_",
    "viewer": "vgl_u_",
    "metrics": "vgl_m_",
    "cluster": "vgl_c_",
    "registration": "vgl_r_",
    "enrolment": "vgl_e_",
    "sensor": "vgl_s_",
    "admission": "vgl_a_",
}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: str
    name: str
    role: str
    secret: str
    cluster_id: str | None = None
    expires_at: datetime | None = None
    node_name: str | None = None


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: str
    cluster_id: str | None = None
    node_name: str | None = None


def issue_token(
    conn: Connection,
    *,
    role: str,
    name: str,
    cluster_id: str | None = None,
    ttl: timedelta | None = None,
    max_uses: int | None = None,
    node_name: str | None = None,
) -> IssuedToken:
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role in CLUSTER_ROLES and not cluster_id:
        raise ValueError(f"a {role} credential needs a cluster id")
    if (role == "sensor") != (node_name is not None):
        raise ValueError("a sensor credential, and only a sensor credential, is bound to a node")
    secret = _PREFIX[role] + secrets.token_urlsafe(32)
    token_id = "tok_" + secrets.token_hex(8)
    now = utcnow()
    expires_at = now + ttl if ttl else None
    conn.execute(
        api_tokens.insert().values(
            id=token_id,
            name=name,
            role=role,
            token_hash=hash_secret(secret),
            cluster_id=cluster_id,
            created_at=now,
            expires_at=expires_at,
            max_uses=max_uses,
            uses=0,
            node_name=node_name,
        )
    )
    return IssuedToken(token_id, name, role, secret, cluster_id, expires_at, node_name)


class TokenRejected(Exception):
    """The presented token is not valid; the message says why without echoing it."""


def authenticate(conn: Connection, secret: str) -> Principal:
    row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == hash_secret(secret))).first()
    if row is None:
        raise TokenRejected("token is not known")
    if row.revoked_at is not None:
        raise TokenRejected(f"token {row.id} was revoked")
    expires_at = as_utc(row.expires_at)
    if expires_at is not None and expires_at <= utcnow():
        raise TokenRejected(f"token {row.id} expired at {expires_at.isoformat()}")
    if row.max_uses is not None and row.uses >= row.max_uses:
        raise TokenRejected(f"token {row.id} has been used its {row.max_uses} allowed times")
    return Principal(row.id, row.name, row.role, row.cluster_id, row.node_name)


def count_use(conn: Connection, token_id: str) -> bool:
    """Count one use of a token if it still admits one (not revoked, not expired, under its limit).

    One conditional UPDATE: the database checks and counts under the row's write lock, so concurrent
    requests that all passed `authenticate` cannot together exceed the limit. False if it admits none.
    """
    t = api_tokens.c
    result = conn.execute(
        update(api_tokens)
        .where(
            t.id == token_id,
            t.revoked_at.is_(None),
            or_(t.expires_at.is_(None), t.expires_at > utcnow()),
            or_(t.max_uses.is_(None), t.uses < t.max_uses),
        )
        .values(uses=t.uses + 1)
    )
    return result.rowcount == 1


def has_admin(conn: Connection) -> bool:
    return (
        conn.execute(
            select(api_tokens.c.id).where(api_tokens.c.role == "admin", api_tokens.c.revoked_at.is_(None)).limit(1)
        ).first()
        is not None
    )


def list_tokens(conn: Connection, roles: tuple[str, ...] = ROLES) -> list[dict]:
    rows = conn.execute(
        select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.role,
            api_tokens.c.cluster_id,
            api_tokens.c.created_at,
            api_tokens.c.expires_at,
            api_tokens.c.revoked_at,
            api_tokens.c.max_uses,
            api_tokens.c.uses,
        )
        .where(api_tokens.c.role.in_(roles))
        .order_by(api_tokens.c.created_at, api_tokens.c.id)
    ).all()
    out = []
    for r in rows:
        d = r._asdict()
        for k in ("created_at", "expires_at", "revoked_at"):
            d[k] = as_utc(d[k])
        out.append(d)
    return out


def revoke_token(conn: Connection, token_id: str) -> bool:
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount == 1


def active_user(conn: Connection, token_id: str) -> Principal | None:
    """The user behind a token id if that token still admits a person (not revoked, not expired):
    what a console session is checked against on every request."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None or row.role not in USER_ROLES or row.revoked_at is not None:
        return None
    expires_at = as_utc(row.expires_at)
    if expires_at is not None and expires_at <= utcnow():
        return None
    return Principal(row.id, row.name, row.role, row.cluster_id)
