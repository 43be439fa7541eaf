"""One service process per SQLite store: a second one is refused at start, naming the file.

SQLite is the embedded one-process store: background jobs there take no leases, so two services on
one file would each run every job. The lock is an exclusive ``flock`` on ``<store>.lock`` beside the
database, held for the life of the process; the kernel drops it when the process ends, however it
ends, so a killed service never leaves a stale lock behind. The file holds the holder's pid for the
message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from vigil.service.store.db import StoreError

_held: dict[Path, int] = {}  # store file -> open lock descriptor, for the life of the process


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def refused_message(database: Path, pid: str) -> str:
    holder = f" (pid {pid})" if pid else ""
    return (
        f"the SQLite store {database} is in use by another Vigil service{holder}: SQLite serves one service "
        "process; to run several replicas, start each with --database-url postgresql://... on one PostgreSQL"
    )


def hold_sqlite_store(url: str) -> Path | None:
    """Take the store's process lock when ``url`` is a SQLite file (StoreError if another process has it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    database = Path(parsed.database).resolve()
    if database in _held:
        return database
    database.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise StoreError(refused_message(database, pid if pid.isdigit() else "")) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[database] = fd
    return database
