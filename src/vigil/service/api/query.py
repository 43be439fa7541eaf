"""Query parameters shared by endpoints, checked the way the rest of the API reports errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from vigil.service.api.deps import reader
from vigil.service.api.errors import ApiError, not_found
from vigil.service.store.clusters import UnknownCluster, resolve_cluster
from vigil.service.store.ids import MAX_ROW_ID, MIN_ROW_ID
from vigil.service.store.tokens import Principal

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


def cluster_query(
    request: Request,
    cluster: str | None = Query(None, max_length=253, description="cluster id or name"),
    who: Principal = Depends(reader),
) -> str | None:
    """The ``cluster`` filter as a cluster id, given either; an unknown one is a 422 naming it (a filter
    that matches nothing would look like an empty cluster). It needs a reader, as the known names it
    lists are what a reader may list anyway; the check runs before the lookup."""
    if not cluster:
        return None
    with request.app.state.engine.connect() as conn:
        try:
            return resolve_cluster(conn, cluster)
        except UnknownCluster as exc:
            raise ApiError(422, "invalid_request", f"query.cluster: {exc}") from None


def cluster_path(
    request: Request,
    cluster_id: str = Path(max_length=253, description="cluster id or name"),
    who: Principal = Depends(reader),
) -> str:
    """The ``{cluster_id}`` of a path as a cluster id, given either; an unknown one is a 404 naming it."""
    with request.app.state.engine.connect() as conn:
        try:
            return resolve_cluster(conn, cluster_id)
        except UnknownCluster as exc:
            raise not_found(str(exc)) from None
