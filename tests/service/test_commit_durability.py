"""An ingest batch is acknowledged only after its commit is durable: on SQLite the WAL is synced at every
commit (synchronous=FULL); on PostgreSQL the service never lowers the server's synchronous_commit."""

from __future__ import annotations

from sqlalchemy import text

from vigil.devtools.inventory import synthetic_snapshot

from .helpers import post_batch

SQLITE_SYNCHRONOUS_FULL = 2


def test_batch_commits_are_synced_before_they_are_acknowledged(service_on):
    svc = service_on
    cluster_id, cred = svc.register("durable")
    resp = post_batch(svc, cred, synthetic_snapshot(cluster_id, nodes=1, pods=2, images=1, seed=3), gzipped=False)
    assert resp.status_code == 200, resp.text

    # engine.begin() is the write path the ingest endpoints commit batches through.
    with svc.engine.begin() as conn:
        if svc.engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == SQLITE_SYNCHRONOUS_FULL
        else:
            setting, server_default = conn.execute(
                text("SELECT setting, reset_val FROM pg_settings WHERE name = 'synchronous_commit'")
            ).one()
            assert setting == server_default
    # Readers get the same pragma: every pooled connection is set up alike.
    with svc.engine.connect() as conn:
        if svc.engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == SQLITE_SYNCHRONOUS_FULL
