"""Time: aware UTC datetimes inside Vigil, ISO 8601 text at its edges.

SQLite hands timestamps back without a zone (they were written in UTC) and PostgreSQL in the
session's zone; reading them through ``as_utc`` and writing them out through ``iso`` gives the same
values and the same text on both stores. It lives at the package root because libraries and units
both use it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` with a zone: a naive one is taken as UTC, an aware one is kept as it is."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text in UTC (``+00:00``), or None; a naive value is taken as UTC."""
    return as_utc(value).astimezone(UTC).isoformat() if value else None


def parse_time(value: str | datetime) -> datetime:
    """An ISO 8601 string or a datetime, with a zone (a naive one is taken as UTC)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
