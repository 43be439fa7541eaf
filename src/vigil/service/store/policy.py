"""The trust policy in the store: trusted patterns and mirror rules, global ('' cluster) or per cluster."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, delete, select

from vigil.clock import utcnow
from vigil.policy.trust import MirrorRule, Pattern, TrustPolicy, TrustRule
from vigil.service.store.schema import trust_rules

log = logging.getLogger(__name__)


def load_policy(conn: Connection) -> TrustPolicy:
    trusted: list[TrustRule] = []
    mirrors: list[MirrorRule] = []
    for row in conn.execute(select(trust_rules).order_by(trust_rules.c.id)):
        cluster = row.cluster or None
        if row.kind == "trusted":
            trusted.append(TrustRule(Pattern.parse(row.pattern), cluster))
        elif row.kind == "mirror":
            mirrors.append(MirrorRule(Pattern.parse(row.pattern), Pattern.parse(row.mirror), cluster))
        else:
            log.warning("trust rule of unknown kind ignored", extra={"rule_id": row.id, "kind": row.kind})
    return TrustPolicy(tuple(trusted), tuple(mirrors))


def _rows(policy: TrustPolicy, actor: str) -> list[dict]:
    now = utcnow()
    rows = [
        dict(
            kind="trusted", pattern=str(r.pattern), mirror="", cluster=r.cluster or "", created_at=now, created_by=actor
        )
        for r in policy.trusted
    ]
    rows += [
        dict(
            kind="mirror",
            pattern=str(m.source),
            mirror=str(m.mirror),
            cluster=m.cluster or "",
            created_at=now,
            created_by=actor,
        )
        for m in policy.mirrors
    ]
    return rows


def replace_policy(conn: Connection, policy: TrustPolicy, actor: str) -> None:
    """Make ``policy`` the whole stored policy (PUT, or the policy file at start)."""
    conn.execute(delete(trust_rules))
    rows = _rows(policy, actor)
    if rows:
        conn.execute(trust_rules.insert(), rows)
    log.info("trust policy replaced", extra={"actor": actor, "rules": len(rows), "revision": policy.revision})


def add_trusted(conn: Connection, pattern: Pattern, cluster: str | None, actor: str) -> bool:
    """Add a trusted pattern; False when it was already there."""
    return _add(conn, "trusted", str(pattern), "", cluster, actor)


def add_mirror(conn: Connection, source: Pattern, mirror: Pattern, cluster: str | None, actor: str) -> bool:
    return _add(conn, "mirror", str(source), str(mirror), cluster, actor)


def _where(kind: str, pattern: str, mirror: str | None, cluster: str | None):
    cond = [trust_rules.c.kind == kind, trust_rules.c.pattern == pattern, trust_rules.c.cluster == (cluster or "")]
    if mirror is not None:
        cond.append(trust_rules.c.mirror == mirror)
    return cond


def _add(conn: Connection, kind: str, pattern: str, mirror: str, cluster: str | None, actor: str) -> bool:
    if conn.execute(select(trust_rules.c.id).where(*_where(kind, pattern, mirror, cluster))).first() is not None:
        return False
    conn.execute(
        trust_rules.insert().values(
            kind=kind, pattern=pattern, mirror=mirror, cluster=cluster or "", created_at=utcnow(), created_by=actor
        )
    )
    log.info(
        "trust rule added",
        extra={"actor": actor, "kind": kind, "pattern": pattern, "mirror": mirror, "cluster": cluster},
    )
    return True


def remove_trusted(conn: Connection, pattern: Pattern, cluster: str | None, actor: str) -> bool:
    return _remove(conn, "trusted", str(pattern), None, cluster, actor)


def remove_mirror(conn: Connection, source: Pattern, mirror: Pattern | None, cluster: str | None, actor: str) -> bool:
    """Remove the mirror rule(s) for ``source`` (only the one to ``mirror`` when given)."""
    return _remove(conn, "mirror", str(source), str(mirror) if mirror else None, cluster, actor)


def _remove(conn: Connection, kind: str, pattern: str, mirror: str | None, cluster: str | None, actor: str) -> bool:
    n = conn.execute(delete(trust_rules).where(*_where(kind, pattern, mirror, cluster))).rowcount
    if n:
        log.info("trust rule removed", extra={"actor": actor, "kind": kind, "pattern": pattern, "cluster": cluster})
    return bool(n)


def list_rules(conn: Connection) -> list[dict]:
    return [
        {
            "kind": r.kind,
            "pattern": r.pattern,
            "mirror": r.mirror or None,
            "cluster": r.cluster or None,
            "created_at": r.created_at,
            "created_by": r.created_by,
        }
        for r in conn.execute(
            select(trust_rules).order_by(trust_rules.c.cluster, trust_rules.c.kind, trust_rules.c.pattern)
        )
    ]
