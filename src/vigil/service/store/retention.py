"""What retention deletes, one bounded batch per call, so no transaction holds its locks for long.

Each rule names a table, the time a row was last seen or changed, and how rows are picked. Open
and suppressed findings are never deleted: only their superseded history (every event but the
newest of each finding) and resolved findings, with their history, once resolved longer than the
period. A finding's newest event stays so its stream and alert position still make sense.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Connection, Table, delete, select, tuple_
from sqlalchemy.orm import aliased

from vigil.model.findings import FindingStatus
from vigil.service.store.schema import (
    admission_decisions,
    executions,
    finding_events,
    findings,
    ingest_batches,
    preventions,
    runtime_activities,
)


def _by_id(table: Table, seen: Column) -> Callable[[Connection, datetime, int], int]:
    def prune(conn: Connection, cutoff: datetime, limit: int) -> int:
        ids = select(table.c.id).where(seen < cutoff).order_by(table.c.id).limit(limit).scalar_subquery()
        return conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount

    return prune


def _ingest_batches(conn: Connection, cutoff: datetime, limit: int) -> int:
    t = ingest_batches
    keys = select(t.c.cluster_id, t.c.batch_id).where(t.c.received_at < cutoff).limit(limit)
    return conn.execute(delete(t).where(tuple_(t.c.cluster_id, t.c.batch_id).in_(keys))).rowcount


def _resolved_findings(conn: Connection, cutoff: datetime, limit: int) -> int:
    f = findings
    ids = (
        select(f.c.id)
        .where(f.c.status == FindingStatus.RESOLVED, f.c.status_changed_at < cutoff)
        .order_by(f.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    # finding_events and vulnerability_runtime rows go with it (ON DELETE CASCADE).
    return conn.execute(delete(f).where(f.c.id.in_(ids))).rowcount


def _superseded_history(conn: Connection, cutoff: datetime, limit: int) -> int:
    e = finding_events
    newer = aliased(e)
    has_newer = select(newer.c.id).where(newer.c.finding_id == e.c.finding_id, newer.c.id > e.c.id).exists()
    ids = select(e.c.id).where(e.c.at < cutoff, has_newer).order_by(e.c.id).limit(limit).scalar_subquery()
    return conn.execute(delete(e).where(e.c.id.in_(ids))).rowcount


@dataclass(frozen=True)
class Rule:
    name: str  # what the job reports and logs
    prune: Callable[[Connection, datetime, int], int]


# Resolved findings before history, so their events go with them rather than one by one.
RULES: tuple[Rule, ...] = (
    Rule("executions", _by_id(executions, executions.c.last_seen_at)),
    Rule("runtime_activities", _by_id(runtime_activities, runtime_activities.c.last_seen_at)),
    Rule("preventions", _by_id(preventions, preventions.c.last_seen_at)),
    Rule("admission_decisions", _by_id(admission_decisions, admission_decisions.c.received_at)),
    Rule("ingest_batches", _ingest_batches),
    Rule("resolved_findings", _resolved_findings),
    Rule("finding_history", _superseded_history),
)
