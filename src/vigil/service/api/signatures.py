"""Image signatures and provenance: what signs each image, each workload's verdict, and an on-demand pass."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.api.deps import admin, reader, signature_verifier
from vigil.service.api.errors import not_found
from vigil.service.api.query import RowId
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.signatures import SignatureVerifier
from vigil.service.store.tokens import Principal
from vigil.service.store.views.signatures import image_signatures
from vigil.wire.views import ImageSignatures, SignaturePassReport

router = APIRouter(prefix="/api/v1", tags=["signatures"], route_class=ViewRoute)


@router.get(
    "/images/{image_id}/signatures",
    response_model=ImageSignatures,
    summary="One image's signatures and attestations (who signed, provenance) and each workload's verdict",
)
def get_image_signatures(image_id: RowId, request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        answer = image_signatures(conn, image_id)
    if answer is None:
        raise not_found(f"image {image_id} does not exist")
    return answer


@router.post(
    "/signatures/verify",
    response_model=SignaturePassReport,
    summary="Check the signatures of running digests that are due now (admin); ?all=true checks every one again",
)
async def verify(
    all: bool = Query(False),
    who: Principal = Depends(admin),
    verifier: SignatureVerifier = Depends(signature_verifier),
) -> dict:
    report = await run_in_threadpool(verifier.run_pass, force=all)
    return report.as_dict()
