"""The PostgreSQL pool's ping after idle: a connection the server dropped while it sat in the pool is
replaced before a request gets it, and a connection just used is handed out without a ping."""

from __future__ import annotations

import time

from sqlalchemy import event, text

from vigil.service.store import db
from vigil.service.store.db import autocommit_connect, create_store_engine


def _backend_pid(engine) -> int:
    with autocommit_connect(engine) as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The lookup ran in no transaction of its own: no BEGIN before it, no ROLLBACK at the close.
        assert conn.connection.dbapi_connection.info.transaction_status.name == "IDLE"
        return pid


def test_a_connection_dropped_while_idle_is_replaced_and_a_busy_one_is_not_pinged(postgres, monkeypatch):
    postgres.reset()
    engine = create_store_engine(postgres.url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    pings: list[str] = []
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection) -> bool:
        try:
            ok = ping(dbapi_connection)
        except Exception as exc:  # psycopg's AdminShutdown for the terminated backend
            pings.append(exc.__class__.__name__)
            raise
        pings.append(f"ok={ok}")
        return ok

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    try:
        first = _backend_pid(engine)
        statements.clear()
        # Just used: handed out again with no ping and no BEGIN/ROLLBACK around the lookup.
        assert _backend_pid(engine) == first
        assert (statements, pings) == (["SELECT pg_backend_pid()"], [])

        # The server ends that backend (a restart, a failover, an idle timeout) while it sits in the pool.
        other = create_store_engine(postgres.url)
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one() is True
        other.dispose()
        monkeypatch.setattr(db, "POOL_PING_AFTER_IDLE_S", 0.2)
        time.sleep(0.3)

        # The checkout's ping finds it dead: the request gets a new connection, not an error.
        replaced = _backend_pid(engine)
        assert replaced != first
        assert pings == ["AdminShutdown"]  # the ping met the terminated backend; the pool connected anew
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
