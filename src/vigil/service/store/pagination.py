"""Key-based pagination: a cursor is the sort key of the last row of a page, opaque to clients.

Every listing pages through ``keyset_rows``: an ascending key (the API's listings) and the
console's sorts in either direction are the same thing, a tuple of keys ending in a unique one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, Select, literal, tuple_

from vigil.clock import as_utc

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class BadCursor(ValueError):
    pass


def encode_cursor(values: Sequence) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except Exception:
        raise BadCursor(f"cursor {cursor[:64]!r} is not one this service issued") from None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, (str, int)) for v in values):
        raise BadCursor(f"cursor {cursor[:64]!r} is not one this service issued for this listing")
    return values


@dataclass(frozen=True)
class Sort:
    """Key expressions with their cursor kind ("str", "int" or "ts"), the last one unique, all in one direction."""

    keys: tuple
    descending: bool = False


def _cursor_value(value: Any, kind: str) -> Any:
    return as_utc(value).isoformat() if kind == "ts" else value


def _bind_cursor_value(raw: Any, kind: str, expr: Any) -> Any:
    wanted = {"ts": str, "str": str, "int": int}[kind]
    if not isinstance(raw, wanted) or isinstance(raw, bool):
        raise BadCursor(f"cursor value {raw!r} is not one this service issued for this sort")
    if kind == "ts":
        try:
            raw = datetime.fromisoformat(str(raw))
        except ValueError:
            raise BadCursor(f"cursor value {raw!r} is not a timestamp this service issued") from None
    return literal(raw, expr.type)


def keyset_rows(
    conn: Connection, stmt: Select, sort: Sort, after: str | None, limit: int
) -> tuple[list[Row], str | None]:
    """A page of ``stmt`` in ``sort`` order after the cursor ``after`` (the last row's keys, from
    the previous page's ``next``), and the cursor of the page that follows (None at the end).
    Each row also carries its keys as ``_k0``, ``_k1``, ..."""
    exprs = [e for e, _ in sort.keys]
    stmt = stmt.add_columns(*[e.label(f"_k{i}") for i, e in enumerate(exprs)])
    if after:
        raw = decode_cursor(after, len(exprs))
        values = [_bind_cursor_value(v, k, e) for v, (e, k) in zip(raw, sort.keys, strict=True)]
        lhs, rhs = tuple_(*exprs), tuple_(*values)
        stmt = stmt.where(lhs < rhs if sort.descending else lhs > rhs)
    stmt = stmt.order_by(*[e.desc() if sort.descending else e.asc() for e in exprs]).limit(limit + 1)
    rows = list(conn.execute(stmt).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor([_cursor_value(getattr(last, f"_k{i}"), k) for i, (_, k) in enumerate(sort.keys)])
