"""Which client certificates the service's CA issued to which credential (src/vigil/service/client_ca.py).

The first certificate of a credential goes to whoever holds its secret; every later one only to a
caller whose connection presents a valid certificate of that credential, so a secret copied after
its holder got a certificate does not get the copier one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from vigil.clock import utcnow
from vigil.service.store.schema import api_tokens, client_certificates


def lock_credential(conn: Connection, token_id: str) -> None:
    """Hold the credential's row until the transaction ends, so two first certificates cannot both be issued.

    A no-op UPDATE takes the row's write lock on PostgreSQL and the database's on SQLite, and what is
    read after it is what the transaction before committed.
    """
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(uses=api_tokens.c.uses))


def issued_count(conn: Connection, token_id: str) -> int:
    return conn.execute(
        select(func.count()).select_from(client_certificates).where(client_certificates.c.token_id == token_id)
    ).scalar_one()


def record_certificate(conn: Connection, token_id: str, fingerprint: str, serial: str, not_after: datetime) -> None:
    conn.execute(
        insert(client_certificates).values(
            fingerprint=fingerprint, token_id=token_id, serial=serial, issued_at=utcnow(), not_after=not_after
        )
    )
