"""Image integrity: each image's verdict with evidence and provenance, and an on-demand evaluation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from vigil.service.api.deps import admin, integrity_evaluator, reader
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, cluster_query
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.integrity import IntegrityEvaluator
from vigil.service.store import integrity as integrity_store
from vigil.service.store.schema import images
from vigil.service.store.tokens import Principal
from vigil.service.store.views import images as image_views
from vigil.wire.views import ImageIntegrity, IntegrityPassReport, IntegrityRow, Page

PROVENANCE_WAIT_SECONDS = 120.0

router = APIRouter(prefix="/api/v1", tags=["integrity"], route_class=ViewRoute)


@router.get(
    "/images/{image_id}/integrity",
    response_model=ImageIntegrity,
    summary="One image's trust and integrity verdict (worst over clusters, and per cluster), with provenance",
)
def image_integrity(
    image_id: RowId,
    request: Request,
    cluster: str | None = Depends(cluster_query),
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        row = conn.execute(select(images).where(images.c.id == image_id)).first()
        if row is None:
            raise not_found(f"image {image_id} does not exist")
        summary = integrity_store.summaries(conn, [image_id], cluster)[image_id]
    return {"image": image_views.image_dict(row), "integrity": summary}


@router.get(
    "/integrity",
    response_model=Page[IntegrityRow],
    summary="Integrity of images, e.g. ?status=violation,unknown; paged by image id",
)
def list_integrity(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    status: str | None = Query(None, description="verified, violation, unknown, untrusted, pending"),
    limit: int = Query(100, ge=1, le=1000),
    after: str | None = None,
    who: Principal = Depends(reader),
) -> dict:
    wanted = [s.strip() for s in (status or "").split(",") if s.strip()]
    allowed = ("verified", "violation", "unknown", "untrusted", "pending")
    bad = [s for s in wanted if s not in allowed]
    if bad:
        raise ApiError(
            422, "invalid_request", f"query.status: {', '.join(map(repr, bad))} not one of {', '.join(allowed)}"
        )
    with request.app.state.engine.connect() as conn:
        running = image_views.ImageFilter(cluster_id=cluster, in_use=True)
        page = image_views.list_images(conn, running, "id", False, after, limit)
    items = []
    for item in page.items:
        if not wanted or item["integrity"]["status"] in wanted:
            items.append(item)
    return {"items": items, "next": page.next}


@router.post(
    "/integrity/evaluate",
    response_model=IntegrityPassReport,
    summary="Evaluate running images now (admin); ?all=true re-checks every one against the registry",
)
async def evaluate(
    all: bool = Query(False),
    who: Principal = Depends(admin),
    evaluator: IntegrityEvaluator = Depends(integrity_evaluator),
) -> dict:
    report = await run_in_threadpool(evaluator.run_pass, force=all, refresh=all)
    # Asked for now: the answer comes once the pass's provenance is stored too (a background
    # pass never waits for it).
    await run_in_threadpool(evaluator.provenance.wait, PROVENANCE_WAIT_SECONDS)
    return report.as_dict()
