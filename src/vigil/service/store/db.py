"""Engines and migrations: SQLite (WAL) in the data directory by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_FILE = "vigil.db"


class StoreError(RuntimeError):
    """The store cannot be used as configured; the message says why and what to do."""


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an INSERT wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise StoreError("the insert reported no primary key")
    return int(key[0])


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / SQLITE_FILE}"


# A commit acknowledges an ingest batch to its sender, which then drops it: in WAL mode NORMAL
# syncs only at checkpoints, so a power loss could lose acknowledged batches; FULL syncs the WAL
# at every commit (bench/ingest_inventory.py measures the cost against NORMAL).
SQLITE_SYNCHRONOUS = "FULL"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets readers (queries, the UI) go on while an ingest transaction writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    # pysqlite would only begin before the first write; begin at the first statement instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("vigil_write") else "BEGIN")


def _immediate_begin(engine: Engine):
    @contextmanager
    def begin() -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execution_options(vigil_write=True)
            with conn.begin():
                yield conn

    return begin


def create_store_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL inside
        raise StoreError(f"database URL is not a valid SQLAlchemy URL: {exc.__class__.__name__}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        # Writers (`engine.begin()`) take SQLite's write lock when they start, so a
        # transaction that reads then writes never fails on a snapshot another writer
        # moved; readers (`engine.connect()`) start a deferred transaction and, in WAL
        # mode, never wait for a writer. Taking the lock for reads too made every
        # request's token lookup queue behind background analysis.
        engine.begin = _immediate_begin(engine)  # type: ignore[method-assign]
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_size=10, max_overflow=10)
        _ping_after_idle(engine)
        return engine
    raise StoreError(f"unsupported database backend {backend!r}: use sqlite:/// or postgresql://")


# A pooled PostgreSQL connection that sat idle this long is pinged before it is handed out, so a
# restarted or failed-over server costs no request an error. One that was just used is not: under
# load every checkout finds a connection used milliseconds ago, and a ping per checkout (SQLAlchemy's
# pool_pre_ping) was a round trip more on every request, two on an ingest request.
POOL_PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "vigil_idle_since"


def _ping_after_idle(engine: Engine) -> None:
    def checkin(_dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection, record, _proxy) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < POOL_PING_AFTER_IDLE_S:
            return
        try:
            ok = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's error for a dead connection: the pool takes another
            raise DisconnectionError(f"pooled connection failed its ping: {exc.__class__.__name__}") from exc
        if not ok:
            raise DisconnectionError("pooled connection failed its ping")

    event.listen(engine.pool, "checkin", checkin)
    event.listen(engine.pool, "checkout", checkout)


def autocommit_connect(engine: Engine) -> Connection:
    """A connection for reads that need no transaction of their own (one lookup): on PostgreSQL they run
    without the BEGIN and ROLLBACK around them (two round trips fewer); SQLite keeps its read transaction."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _join(revisions) -> str | None:
    # Parts of the schema may be developed on parallel branches of the migration
    # graph; a store is current when it is at every head.
    return "+".join(sorted(revisions)) or None


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(None))  # type: ignore[arg-type]
    head = _join(script.get_heads())
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _join(MigrationContext.configure(conn).get_current_heads())


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision of every branch (idempotent)."""
    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "heads")
    after = current_revision(engine)
    if before != after:
        log.info("store migrated", extra={"from_revision": before, "to_revision": after})
