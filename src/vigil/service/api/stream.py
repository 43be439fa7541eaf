"""Findings as they change: server-sent events over the finding history.

Every change of a finding (opened, reopened, severity changed, resolved, suppressed) is a row
of ``finding_events``; the stream tails that table by id and sends each new row with the
finding as it is now (risk included). A client that reconnects with ``Last-Event-ID`` (browsers
do it by themselves) resumes after the last event it received, so nothing is missed.

The stream looks again as soon as findings changed (this process's runtime analysis, and on
PostgreSQL every replica's writers, wake it: ``jobs/wakeups.py``), and every ``POLL_SECONDS``
whatever happens, so a change no one woke it for (another process on the store) is not missed.

On PostgreSQL an id taken by one transaction can become visible after a higher one: the
stream remembers what it sent above its position and waits for such a hole to fill for
``HOLE_GRACE`` seconds before going past it.
"""

from __future__ import annotations

import time

import orjson
from fastapi import Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from vigil.clock import iso
from vigil.model.findings import FINDING_TYPES, SEVERITIES, FindingStatus
from vigil.service.api.deps import reader, still_valid
from vigil.service.api.errors import ApiError
from vigil.service.api.query import cluster_query, csv_values
from vigil.service.store import risk as risk_store
from vigil.service.store.ids import MAX_ROW_ID
from vigil.service.store.schema import finding_events, findings
from vigil.service.store.tokens import Principal
from vigil.service.store.views import findings as finding_views

POLL_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0
REAUTH_SECONDS = 30.0
HOLE_GRACE = 5.0
BATCH = 500


def event_kind(from_status: str | None, to_status: str) -> str:
    if from_status is None:
        return "opened"
    if to_status == FindingStatus.OPEN:
        return "reopened" if from_status != FindingStatus.OPEN else "severity_changed"
    return to_status  # resolved | suppressed


class _Position:
    """Every event id up to ``upto`` was sent or given up; ``sent`` holds ids sent above it."""

    def __init__(self, upto: int) -> None:
        self.upto = upto
        self.sent: set[int] = set()
        self.holes: dict[int, float] = {}

    def advance(self, now: float) -> None:
        while self.sent:
            nxt = self.upto + 1
            if nxt in self.sent:
                self.sent.discard(nxt)
                self.holes.pop(nxt, None)
                self.upto = nxt
                continue
            first = self.holes.setdefault(nxt, now)
            if now - first < HOLE_GRACE:
                return
            self.holes.pop(nxt, None)
            self.upto = nxt  # never committed (rolled back): go past it


def _parse_last_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > len(str(MAX_ROW_ID)) or int(value) > MAX_ROW_ID:
        raise ApiError(
            422,
            "invalid_request",
            f"Last-Event-ID {value[:40]!r} is not an event id this stream sent (an integer from 0 to {MAX_ROW_ID})",
        )
    return int(value)


async def stream_findings(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    severity: str | None = Query(None, description="only these severities, e.g. critical,high"),
    type: str | None = Query(None, description="only these finding types"),
    after: int | None = Query(
        None, ge=0, le=MAX_ROW_ID, description="start after this event id (default: now; Last-Event-ID wins)"
    ),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    who: Principal = Depends(reader),
) -> StreamingResponse:
    severities = set(csv_values("severity", severity, SEVERITIES))
    types = set(csv_values("type", type, FINDING_TYPES))
    engine = request.app.state.engine
    changed = request.app.state.workers.findings
    resume = _parse_last_id(last_event_id)
    if resume is None:
        resume = after
    if resume is None:
        with engine.connect() as conn:
            resume = conn.execute(select(func.coalesce(func.max(finding_events.c.id), 0))).scalar_one()
    secret = request.headers.get("authorization", "").partition(" ")[2].strip()

    def fetch(upto: int, sent: set[int]) -> list[tuple[int, bytes]]:
        e = finding_events
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    e.c.id,
                    e.c.finding_id,
                    e.c.at,
                    e.c.from_status,
                    e.c.to_status,
                    e.c.severity,
                    e.c.reason,
                    e.c.actor,
                    findings.c.cluster_id,
                    findings.c.type,
                )
                .join(findings, findings.c.id == e.c.finding_id)
                .where(e.c.id > upto)
                .order_by(e.c.id)
                .limit(BATCH)
            ).all()
            fresh = [r for r in rows if r.id not in sent]
            wanted = {
                r.id
                for r in fresh
                if (not cluster or r.cluster_id == cluster)
                and (not severities or r.severity in severities)
                and (not types or r.type in types)
            }
            items: dict[int, dict] = {}
            ids = sorted({r.finding_id for r in fresh if r.id in wanted})
            if ids:
                dicts = [
                    finding_views.finding_dict(f) for f in conn.execute(select(findings).where(findings.c.id.in_(ids)))
                ]
                risk_store.attach_risk(conn, dicts)
                items = {d["id"]: d for d in dicts}
        out = []
        for r in fresh:
            if r.id not in wanted:
                out.append((r.id, b""))  # filtered out: handled all the same
                continue
            payload = {
                "event": {
                    "id": r.id,
                    "kind": event_kind(r.from_status, r.to_status),
                    "at": iso(r.at),
                    "from_status": r.from_status,
                    "to_status": r.to_status,
                    "severity": r.severity,
                    "reason": r.reason,
                    "actor": r.actor,
                },
                "finding": items.get(r.finding_id),
            }
            out.append((r.id, b"id: %d\nevent: finding\ndata: %s\n\n" % (r.id, orjson.dumps(payload))))
        return out

    async def events():
        position = _Position(resume)
        yield b"retry: 1000\n: stream of finding changes\n\n"
        last_send = last_auth = time.monotonic()
        while True:
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - last_auth >= REAUTH_SECONDS:
                last_auth = now
                if not await run_in_threadpool(still_valid, engine, secret):
                    yield b'event: end\ndata: {"reason": "token no longer valid"}\n\n'
                    return
            seen = changed.generation  # read before the fetch: a change during it wakes the wait below
            batch = await run_in_threadpool(fetch, position.upto, position.sent)
            for eid, chunk in batch:
                position.sent.add(eid)
                if chunk:
                    yield chunk
                    last_send = now
            position.advance(time.monotonic())
            if now - last_send >= KEEPALIVE_SECONDS:
                last_send = now
                yield b": keepalive\n\n"
            if len(batch) < BATCH:
                await changed.wait(seen, POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
