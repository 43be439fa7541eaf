"""Job leases: which replica runs each background job, claimed and renewed in the database.

Times are the database's (``now()``), so replicas whose clocks disagree still agree on who holds
a lease. A claim succeeds when nobody holds the job, when the caller already holds it, or when the
holder's lease ran out (a replica that died or stopped renewing); each is one atomic statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Connection, case, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from vigil.service.store.schema import job_leases


def claim(conn: Connection, job: str, holder: str, period: float) -> bool:
    """Take or keep ``job`` for ``period`` seconds; False while another holder's lease holds."""
    now = func.now()
    until = now + timedelta(seconds=period)
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values = insert(job_leases).values(job=job, holder=holder, acquired_at=now, expires_at=until)
    stmt = values.on_conflict_do_update(
        index_elements=[job_leases.c.job],
        set_={
            "holder": holder,
            "expires_at": until,
            "acquired_at": case((job_leases.c.holder == holder, job_leases.c.acquired_at), else_=now),
        },
        where=or_(job_leases.c.holder == holder, job_leases.c.expires_at < now),
    ).returning(job_leases.c.job)
    return conn.execute(stmt).first() is not None


def renew(conn: Connection, jobs: Iterable[str], holder: str, period: float) -> set[str]:
    """Extend the leases ``holder`` still holds among ``jobs``; the ones returned are still its."""
    wanted = list(jobs)
    if not wanted:
        return set()
    rows = conn.execute(
        update(job_leases)
        .where(job_leases.c.holder == holder, job_leases.c.job.in_(wanted))
        .values(expires_at=func.now() + timedelta(seconds=period))
        .returning(job_leases.c.job)
    )
    return {r.job for r in rows}


def release(conn: Connection, jobs: Iterable[str], holder: str) -> None:
    """Hand back ``holder``'s leases among ``jobs``, so another replica takes them at its next try."""
    wanted = list(jobs)
    if wanted:
        conn.execute(delete(job_leases).where(job_leases.c.holder == holder, job_leases.c.job.in_(wanted)))
