"""The trust policy in the store: trusted patterns and mirror rules, global ('' cluster) or per cluster."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, delete, select

from vigil.clock import utcnow
from vigil.policy.signature_rules import SignatureRule
from vigil.policy.trust import MirrorRule, Pattern, TrustPolicy, TrustRule
from vigil.policy.trust_doc import SignatureRuleDoc
from vigil.service.store.schema import signature_rules, trust_rules

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
    return TrustPolicy(tuple(trusted), tuple(mirrors), load_signature_rules(conn))


def load_signature_rules(conn: Connection) -> tuple[SignatureRule, ...]:
    out: list[SignatureRule] = []
    for row in conn.execute(select(signature_rules).order_by(signature_rules.c.id)):
        doc = SignatureRuleDoc.model_validate(
            {**row.requirement, "pattern": row.pattern, "namespace": row.namespace or None}
        )
        out.append(doc.to_rule(row.cluster or None))
    return tuple(out)


def _signature_row(rule: SignatureRule, actor: str) -> dict:
    doc = SignatureRuleDoc.from_rule(rule).model_dump(exclude={"pattern", "namespace"})
    return dict(
        pattern=str(rule.pattern),
        cluster=rule.cluster or "",
        namespace=rule.namespace or "",
        requirement=doc,
        created_at=utcnow(),
        created_by=actor,
    )


def put_signature_rule(conn: Connection, rule: SignatureRule, actor: str) -> bool:
    """Set the requirement of the rule's place (pattern, cluster, namespace); False when it replaced one."""
    removed = remove_signature_rule(conn, rule.pattern, rule.cluster, rule.namespace, actor)
    conn.execute(signature_rules.insert().values(**_signature_row(rule, actor)))
    log.info("signature rule set", extra={"actor": actor, "rule": rule.describe()})
    return not removed


def remove_signature_rule(
    conn: Connection, pattern: Pattern, cluster: str | None, namespace: str | None, actor: str
) -> bool:
    n = conn.execute(
        delete(signature_rules).where(
            signature_rules.c.pattern == str(pattern),
            signature_rules.c.cluster == (cluster or ""),
            signature_rules.c.namespace == (namespace or ""),
        )
    ).rowcount
    if n:
        log.info("signature rule removed", extra={"actor": actor, "pattern": str(pattern), "cluster": cluster})
    return bool(n)


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
    conn.execute(delete(signature_rules))
    rows = _rows(policy, actor)
    if rows:
        conn.execute(trust_rules.insert(), rows)
    if policy.signatures:
        conn.execute(signature_rules.insert(), [_signature_row(r, actor) for r in policy.signatures])
    log.info(
        "trust policy replaced",
        extra={"actor": actor, "rules": len(rows) + len(policy.signatures), "revision": policy.revision},
    )


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
    signatures = [
        {
            "kind": "signatures",
            "pattern": r.pattern,
            "mirror": None,
            "cluster": r.cluster or None,
            "namespace": r.namespace or None,
            "requires": _requirement_text(r.requirement),
            "created_at": r.created_at,
            "created_by": r.created_by,
        }
        for r in conn.execute(select(signature_rules).order_by(signature_rules.c.cluster, signature_rules.c.pattern))
    ]
    return _trust_rows(conn) + signatures


def _requirement_text(doc: dict) -> str:
    """A signature rule's requirement in a table cell: keys, identities, attestations, sources, builders."""
    parts = [f"key {k['name']}" for k in doc.get("keys") or []]
    parts += [
        f"identity {i.get('issuer') or '/' + str(i.get('issuer_pattern')) + '/'}="
        f"{i.get('subject') or '/' + str(i.get('subject_pattern')) + '/'}"
        for i in doc.get("identities") or []
    ]
    parts += [f"attestation {t}" for t in doc.get("attestations") or []]
    parts += [f"source {t}" for t in doc.get("source_repositories") or []]
    parts += [f"builder {t}" for t in doc.get("builder_ids") or []]
    return "; ".join(parts)


def _trust_rows(conn: Connection) -> list[dict]:
    return [
        {
            "kind": r.kind,
            "pattern": r.pattern,
            "mirror": r.mirror or None,
            "cluster": r.cluster or None,
            "namespace": None,
            "requires": None,
            "created_at": r.created_at,
            "created_by": r.created_by,
        }
        for r in conn.execute(
            select(trust_rules).order_by(trust_rules.c.cluster, trust_rules.c.kind, trust_rules.c.pattern)
        )
    ]
