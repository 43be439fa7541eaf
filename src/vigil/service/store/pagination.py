"""Key-based pagination: a cursor is the sort key of the last row of a page, opaque to clients."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, tuple_

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

R = TypeVar("R")  # a result row


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


def page(stmt: Select, key_columns: Sequence, after: str | None, limit: int) -> Select:
    """Order by the key and start after the cursor; fetch one extra row to know if more follow."""
    if after:
        stmt = stmt.where(tuple_(*key_columns) > tuple_(*decode_cursor(after, len(key_columns))))
    return stmt.order_by(*key_columns).limit(limit + 1)


def split_page(rows: Sequence[R], key_of: Callable[[R], Sequence[Any]], limit: int) -> tuple[Sequence[R], str | None]:
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key_of(rows[-1]))
    return rows, None
