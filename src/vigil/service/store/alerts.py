"""Alert outputs, each output's cursor in the finding history (with its delivery lease), and dead letters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, not_, or_, select, update

from vigil.clock import as_utc, iso, utcnow
from vigil.service.analysis.alerts.cursor import Cursor
from vigil.service.analysis.alerts.events import FindingView
from vigil.service.store.db import inserted_id
from vigil.service.store.schema import (
    alert_cursors,
    alert_dead_letters,
    alert_outputs,
    clusters,
    finding_events,
    findings,
    images,
)
from vigil.service.store.views.common import image_ref


class DuplicateOutput(ValueError):
    """An output with that name exists already."""


@dataclass(frozen=True)
class OutputRow:
    id: int
    name: str
    kind: str
    threshold: str
    events: tuple[str, ...]
    config: dict
    secrets: dict
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class HistoryEntry:
    """One finding_events row with what an alert needs about its finding."""

    id: int
    at: datetime
    from_status: str | None
    to_status: str
    severity: str
    previous_severity: str | None
    reason: str | None
    actor: str
    finding: FindingView


def _output(row) -> OutputRow:
    return OutputRow(
        row.id,
        row.name,
        row.kind,
        row.threshold,
        tuple(row.events),
        dict(row.config),
        dict(row.secrets),
        as_utc(row.created_at),
        row.created_by,
    )


def max_event_id(conn: Connection) -> int:
    return conn.execute(select(func.max(finding_events.c.id))).scalar() or 0


def create_output(
    conn: Connection,
    *,
    name: str,
    kind: str,
    threshold: str,
    events: list[str],
    config: dict,
    secrets: dict,
    actor: str,
) -> OutputRow:
    """A new output starts at the end of the history: it receives changes made after it was added."""
    if conn.execute(select(alert_outputs.c.id).where(alert_outputs.c.name == name)).first():
        raise DuplicateOutput(f"an alert output named {name!r} already exists")
    now = utcnow()
    # A concurrent insert of the same name fails on the unique key (IntegrityError) instead.
    oid = inserted_id(
        conn.execute(
            insert(alert_outputs).values(
                name=name,
                kind=kind,
                threshold=threshold,
                events=list(events),
                config=config,
                secrets=secrets,
                created_at=now,
                created_by=actor,
            )
        )
    )
    conn.execute(insert(alert_cursors).values(output_id=oid, position=max_event_id(conn), done=[], updated_at=now))
    return get_output(conn, oid)  # type: ignore[return-value]


def list_outputs(conn: Connection) -> list[OutputRow]:
    return [_output(r) for r in conn.execute(select(alert_outputs).order_by(alert_outputs.c.id))]


def get_output(conn: Connection, output_id: int) -> OutputRow | None:
    row = conn.execute(select(alert_outputs).where(alert_outputs.c.id == output_id)).first()
    return _output(row) if row else None


def delete_output(conn: Connection, output_id: int) -> bool:
    return conn.execute(delete(alert_outputs).where(alert_outputs.c.id == output_id)).rowcount > 0


def positions(conn: Connection) -> dict[int, int]:
    return dict(conn.execute(select(alert_cursors.c.output_id, alert_cursors.c.position)).all())


def dead_letter_counts(conn: Connection) -> dict[int, int]:
    rows = conn.execute(
        select(alert_dead_letters.c.output_id, func.count())
        .where(alert_dead_letters.c.output_id.is_not(None))
        .group_by(alert_dead_letters.c.output_id)
    )
    return dict(rows.all())


# -- the cursor and its lease ---------------------------------------------------------------------


def _now(conn: Connection):
    """The database's time on PostgreSQL, so replicas whose clocks disagree still agree on who holds
    a cursor; SQLite serves one process, whose clock is the one that counts."""
    return func.now() if conn.dialect.name == "postgresql" else utcnow()


def claim(conn: Connection, output_id: int, owner: str, period: float) -> Cursor | None:
    """Take (or renew) the right to deliver for this output for ``period`` seconds; None when another
    dispatcher holds it. Each service replica runs a dispatcher: the lease keeps two from sending the
    same alert."""
    now = _now(conn)
    taken = conn.execute(
        update(alert_cursors)
        .where(
            alert_cursors.c.output_id == output_id,
            or_(
                alert_cursors.c.lease_owner.is_(None),
                alert_cursors.c.lease_owner == owner,
                alert_cursors.c.lease_until < now,
            ),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=period))
    ).rowcount
    if not taken:
        return None
    row = conn.execute(
        select(alert_cursors.c.position, alert_cursors.c.done).where(alert_cursors.c.output_id == output_id)
    ).one()
    return Cursor.from_store(row.position, row.done)


def save(conn: Connection, output_id: int, owner: str, cursor: Cursor, period: float) -> bool:
    """Store the cursor and extend the lease if this dispatcher still holds it (False: lease lost or
    output removed)."""
    return (
        conn.execute(
            update(alert_cursors)
            .where(alert_cursors.c.output_id == output_id, alert_cursors.c.lease_owner == owner)
            .values(
                position=cursor.position,
                done=cursor.to_store(),
                lease_until=_now(conn) + timedelta(seconds=period),
                updated_at=utcnow(),
            )
        ).rowcount
        > 0
    )


def renew(conn: Connection, output_ids: Iterable[int], owner: str, period: float) -> set[int]:
    """Extend the leases ``owner`` still holds among ``output_ids``; the ones returned are still its."""
    wanted = list(output_ids)
    if not wanted:
        return set()
    rows = conn.execute(
        update(alert_cursors)
        .where(alert_cursors.c.lease_owner == owner, alert_cursors.c.output_id.in_(wanted))
        .values(lease_until=_now(conn) + timedelta(seconds=period))
        .returning(alert_cursors.c.output_id)
    )
    return {r.output_id for r in rows}


def release(conn: Connection, output_id: int, owner: str) -> None:
    conn.execute(
        update(alert_cursors)
        .where(alert_cursors.c.output_id == output_id, alert_cursors.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def history_after(conn: Connection, cursor: Cursor, limit: int) -> list[HistoryEntry]:
    """The next ``limit`` history rows the cursor has not handled, oldest first."""
    fe, prev = finding_events, finding_events.alias("prev")
    previous_severity = (
        select(prev.c.severity)
        .where(prev.c.finding_id == fe.c.finding_id, prev.c.id < fe.c.id)
        .order_by(prev.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(
            fe.c.id,
            fe.c.at,
            fe.c.from_status,
            fe.c.to_status,
            fe.c.severity,
            fe.c.reason,
            fe.c.actor,
            previous_severity.label("previous_severity"),
            findings.c.id.label("finding_id"),
            findings.c.type,
            findings.c.subject,
            findings.c.cluster_id,
            findings.c.namespace,
            findings.c.workload_kind,
            findings.c.workload_name,
            findings.c.evidence,
            findings.c.first_seen_at,
            findings.c.last_seen_at,
            clusters.c.name.label("cluster_name"),
            images.c.registry,
            images.c.repository,
            images.c.tag,
            images.c.digest,
        )
        .select_from(
            fe.join(findings, findings.c.id == fe.c.finding_id)
            .outerjoin(clusters, clusters.c.id == findings.c.cluster_id)
            .outerjoin(images, images.c.id == findings.c.image_pk)
        )
        .where(fe.c.id > cursor.position, *[not_(and_(fe.c.id >= lo, fe.c.id <= hi)) for lo, hi in cursor.done])
        .order_by(fe.c.id)
        .limit(limit)
    )
    out = []
    for r in conn.execute(stmt):
        view = FindingView(
            id=r.finding_id,
            type=r.type,
            subject=r.subject,
            cluster_id=r.cluster_id,
            cluster_name=r.cluster_name,
            namespace=r.namespace,
            workload_kind=r.workload_kind,
            workload_name=r.workload_name,
            image=image_ref(r.registry, r.repository, r.tag, r.digest),
            evidence=r.evidence or {},
            first_seen_at=as_utc(r.first_seen_at),
            last_seen_at=as_utc(r.last_seen_at),
        )
        out.append(
            HistoryEntry(
                r.id, as_utc(r.at), r.from_status, r.to_status, r.severity, r.previous_severity, r.reason, r.actor, view
            )
        )
    return out


# -- dead letters ---------------------------------------------------------------------------------


def add_dead_letter(
    conn: Connection,
    output: OutputRow,
    event_id: int,
    finding_id: int | None,
    event: str,
    payload: dict,
    error: str,
    attempts: int,
) -> int:
    return inserted_id(
        conn.execute(
            insert(alert_dead_letters).values(
                output_id=output.id,
                output_name=output.name,
                event_id=event_id,
                finding_id=finding_id,
                event=event,
                payload=payload,
                error=error,
                attempts=attempts,
                failed_at=utcnow(),
            )
        )
    )


def list_dead_letters(
    conn: Connection, output_id: int | None, before: int | None, limit: int
) -> tuple[list[dict], int | None]:
    """Newest first; the second value is the ``before`` of the next page (None at the end)."""
    dl = alert_dead_letters
    stmt = select(dl).order_by(dl.c.id.desc()).limit(limit + 1)
    if output_id is not None:
        stmt = stmt.where(dl.c.output_id == output_id)
    if before is not None:
        stmt = stmt.where(dl.c.id < before)
    rows = conn.execute(stmt).all()
    items = [
        {
            "id": r.id,
            "output_id": r.output_id,
            "output_name": r.output_name,
            "event_id": r.event_id,
            "finding_id": r.finding_id,
            "event": r.event,
            "error": r.error,
            "attempts": r.attempts,
            "failed_at": iso(r.failed_at),
            "payload": r.payload,
        }
        for r in rows[:limit]
    ]
    return items, (items[-1]["id"] if len(rows) > limit else None)
