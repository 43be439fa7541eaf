"""Query parameters shared by endpoints, checked the way the rest of the API reports errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from vigil.service.api.errors import ApiError
from vigil.service.store.ids import MAX_ROW_ID, MIN_ROW_ID

# Every id in a path or query is bounded to the store's id range: beyond it the database
# driver cannot bind the value, and the answer would be a 500 instead of a 422 naming the parameter.
RowId = Annotated[int, Path(ge=MIN_ROW_ID, le=MAX_ROW_ID)]


def row_id_query(description: str) -> int | None:
    """An optional id in the query string, bounded like ``RowId``."""
    return Query(None, ge=MIN_ROW_ID, le=MAX_ROW_ID, description=description)


def csv_values(name: str, value: str | None, allowed: tuple[str, ...]) -> list[str]:
    """``a,b`` -> ["a", "b"]; a value outside ``allowed`` is a 422 naming ``query.<name>``."""
    if not value:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ApiError(
            422, "invalid_request", f"query.{name}: {', '.join(map(repr, bad))} not one of {', '.join(allowed)}"
        )
    return items
