"""Console sessions: one row per signed-in browser, so sign-out and revocation end it at once.

The browser holds a random session id (inside the signed cookie); only its sha256 is stored.
A session admits its person while its row exists, has not expired and its token still admits them.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Connection, delete, select

from vigil.clock import as_utc, utcnow
from vigil.service.store.schema import console_sessions
from vigil.service.store.tokens import Principal, active_user, hash_secret


def open_session(conn: Connection, token_id: str, ttl: timedelta) -> str:
    """A new session for ``token_id``; returns the id the browser keeps. Expired rows are swept here."""
    now = utcnow()
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        console_sessions.insert().values(
            id_hash=hash_secret(session_id), token_id=token_id, created_at=now, expires_at=now + ttl
        )
    )
    return session_id


def session_user(conn: Connection, session_id: str) -> Principal | None:
    """The person behind a live session, or None if it ended, expired, or its token no longer admits them."""
    row = conn.execute(
        select(console_sessions.c.token_id, console_sessions.c.expires_at).where(
            console_sessions.c.id_hash == hash_secret(session_id)
        )
    ).first()
    if row is None:
        return None
    expires_at = as_utc(row.expires_at)
    if expires_at is None or expires_at <= utcnow():
        return None
    return active_user(conn, row.token_id)


def end_session(conn: Connection, session_id: str) -> bool:
    result = conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == hash_secret(session_id)))
    return result.rowcount == 1


def end_token_sessions(conn: Connection, token_id: str) -> int:
    """End every session signed in with ``token_id``; returns how many there were."""
    result = conn.execute(delete(console_sessions).where(console_sessions.c.token_id == token_id))
    return result.rowcount
