"""Live updates: a server-sent event whenever a finding is added, seen again or changes status.

The stream polls the findings table (one aggregate row) every half second, so it works the
same on SQLite and PostgreSQL and across replicas; it ends after a while and the browser
reconnects, re-checking the session each time.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from vigil.service.store import sessions
from vigil.service.store.views import findings as finding_views
from vigil.service.ui import web

router = APIRouter()
POLL_S = 0.5
KEEPALIVE_S = 15.0
STREAM_S = 300.0
RECHECK_S = 10.0


def _marker(engine) -> tuple:
    with engine.connect() as conn:
        return finding_views.findings_marker(conn)


def _still_valid(engine, session_id: str, token_id: str) -> bool:
    with engine.connect() as conn:
        who = sessions.session_user(conn, session_id)
    return who is not None and who.token_id == token_id


@router.get("/ui/events")
async def events(request: Request):
    session = web.current_session(request)
    engine = request.app.state.engine
    if session is None or session.token_id is None or session.session_id is None:  # not signed in
        return PlainTextResponse("sign in first", status_code=401)
    token_id, session_id = session.token_id, session.session_id
    if not await run_in_threadpool(_still_valid, engine, session_id, token_id):
        return PlainTextResponse("sign in first", status_code=401)
    # Taken before the response starts, so a change right after the browser sees the stream open is sent.
    first = await run_in_threadpool(_marker, engine)

    async def stream():
        last, started = first, time.monotonic()
        last_sent = last_check = started
        yield "retry: 2000\n\n"
        while time.monotonic() - started < STREAM_S:
            await asyncio.sleep(POLL_S)
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - last_check >= RECHECK_S:
                last_check = now
                if not await run_in_threadpool(_still_valid, engine, session_id, token_id):
                    yield "event: signed-out\ndata: {}\n\n"
                    return
            marker = await run_in_threadpool(_marker, engine)
            if marker != last:
                last, last_sent = marker, now
                yield f"event: findings\ndata: {marker[0]}\n\n"
            elif now - last_sent >= KEEPALIVE_S:
                last_sent = now
                yield ": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})
