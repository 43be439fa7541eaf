"""The enforcement policy in the store: one row per revision, the newest in force, the rest its history."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from vigil.clock import as_utc, utcnow
from vigil.policy.enforcement import EnforcementPolicy, parse_enforcement
from vigil.service.store.schema import enforcement_policy_revisions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEnforcement:
    policy: EnforcementPolicy
    revision: str
    updated_at: datetime | None  # None: never stored, the default policy is in force
    updated_by: str | None


def _stored(row) -> StoredEnforcement:
    # Read with the code that validated it when it was stored: a row this version cannot read is an
    # error naming the revision, not a silently different policy.
    policy = parse_enforcement(row.document, f"revision {row.revision} (stored row {row.id})")
    return StoredEnforcement(policy, row.revision, as_utc(row.updated_at), row.updated_by)


def default_enforcement() -> StoredEnforcement:
    policy = EnforcementPolicy.model_validate({})
    return StoredEnforcement(policy, policy.revision, None, None)


def load_enforcement(conn: Connection) -> StoredEnforcement:
    """The policy in force: the newest stored revision, else the default (nothing enforced)."""
    t = enforcement_policy_revisions
    row = conn.execute(select(t).order_by(t.c.id.desc()).limit(1)).first()
    return default_enforcement() if row is None else _stored(row)


def latest_row(conn: Connection) -> tuple[int, str] | None:
    """(row id, revision) of the policy in force, or None: what a feed compares to see a change cheaply."""
    t = enforcement_policy_revisions
    row = conn.execute(select(t.c.id, t.c.revision).order_by(t.c.id.desc()).limit(1)).first()
    return None if row is None else (int(row.id), str(row.revision))


def replace_enforcement(conn: Connection, policy: EnforcementPolicy, actor: str) -> StoredEnforcement:
    """Make ``policy`` the one in force, as a new revision (the earlier ones stay as history)."""
    now = utcnow()
    conn.execute(
        enforcement_policy_revisions.insert().values(
            revision=policy.revision, document=policy.model_dump(mode="json"), updated_at=now, updated_by=actor
        )
    )
    log.info(
        "enforcement policy replaced",
        extra={"actor": actor, "revision": policy.revision, "policies": len(policy.policies)},
    )
    return StoredEnforcement(policy, policy.revision, now, actor)


def enforcement_history(conn: Connection, limit: int = 50) -> list[StoredEnforcement]:
    """The stored revisions, newest first."""
    t = enforcement_policy_revisions
    rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(limit)).all()
    return [_stored(r) for r in rows]
