"""Global search: images, workloads, pods, packages, advisories and findings matching one text."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from vigil.service.api.deps import reader
from vigil.service.api.errors import ApiError
from vigil.service.api.responses import ViewRoute
from vigil.service.store import search as search_store
from vigil.service.store.tokens import Principal
from vigil.wire.views import SearchResults

router = APIRouter(prefix="/api/v1", tags=["search"], route_class=ViewRoute)


def results_body(results: search_store.Results) -> dict:
    """The search answer's body: each kind's listed matches, their total and how many more."""
    body: dict = {"query": results.query, "total": results.total}
    for g in results.groups:
        body[g.kind] = {"items": g.items, "total": g.total, "more": g.more}
    return body


@router.get(
    "/search",
    response_model=SearchResults,
    summary="Search images (reference, digest prefix), workloads, pods, packages, advisory ids and findings",
)
def search(
    request: Request,
    q: str = Query(
        ...,
        max_length=search_store.MAX_QUERY,
        description="text: part of an image reference, workload, pod, package or finding subject; a digest "
        f"prefix (sha256:… or at least {search_store.MIN_DIGEST_HEX} hex digits); or a whole advisory id",
    ),
    limit: int = Query(
        search_store.DEFAULT_PER_KIND, ge=1, le=search_store.MAX_PER_KIND, description="matches listed per kind"
    ),
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        try:
            results = search_store.search(conn, q, limit)
        except search_store.BadQuery as exc:
            raise ApiError(422, "invalid_request", f"query.{exc}") from None
    return results_body(results)
