"""PostgreSQL notifications that wake the other service replicas: runtime records queued, a finding changed.

A ``NOTIFY`` sent inside a transaction reaches the listeners when that transaction commits, and not
at all when it rolls back, so a replica woken by one always finds the rows it was woken for. Each
channel is notified at most once per transaction (a pass may change thousands of findings, and one
wake is all a listener needs). SQLite serves one process, which wakes its own workers: nothing is sent.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# Runtime records were queued for analysis (a runtime batch, or inventory that may make queued ones ready).
RUNTIME_QUEUED = "vigil_runtime_queued"
# A row was added to finding_events: the findings streams have something to send.
FINDINGS_CHANGED = "vigil_findings_changed"
CHANNELS = (RUNTIME_QUEUED, FINDINGS_CHANGED)

_SENT = "vigil_notified"


def notify(conn: Connection, channel: str) -> None:
    """Wake every replica's listener of ``channel`` when the current transaction commits."""
    if conn.dialect.name != "postgresql":
        return
    tx = conn.get_transaction()
    sent: dict[str, object] = conn.info.setdefault(_SENT, {})
    # conn.info belongs to the pooled DBAPI connection and outlives this transaction: keyed by the
    # transaction object, a later transaction on the same connection notifies again.
    if tx is not None and sent.get(channel) is tx:
        return
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
    sent[channel] = tx
