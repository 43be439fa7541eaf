"""The vulnerability funnel (all, with a fix, running) of an image and of a workload, for readers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from vigil.service.api.deps import reader
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, cluster_path
from vigil.service.api.responses import ViewRoute, error_response
from vigil.service.store.tokens import Principal
from vigil.service.store.views import funnel as funnel_views
from vigil.wire.views import ImageFunnel, WorkloadFunnel

router = APIRouter(prefix="/api/v1", tags=["contents"], route_class=ViewRoute)

NOT_SCANNED: dict[int | str, dict[str, Any]] = {
    409: error_response("The image is not scanned yet (or its scan failed); `detail` says which")
}


@router.get(
    "/images/{image_id}/funnel",
    response_model=ImageFunnel,
    responses=NOT_SCANNED,
    summary="An image's vulnerabilities, those with a fix, and of those the ones observed running in any workload",
)
def image_funnel(image_id: RowId, request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        got = funnel_views.image_funnel(conn, image_id)
    if got is None:
        raise not_found(f"image {image_id} does not exist")
    if got["scan_status"] != "done":
        raise ApiError(409, "not_scanned", f"image {image_id} is not scanned yet (scan {got['scan_status']})")
    return got


@router.get(
    "/workloads/{cluster_id}/{namespace}/{kind}/{name}/funnel",
    response_model=WorkloadFunnel,
    summary="A workload's vulnerabilities over its images, those with a fix, and of those the ones it runs",
)
def workload_funnel(
    request: Request,
    cluster_id: str = Depends(cluster_path),
    # Kubernetes names: a namespace is a DNS label, a name a DNS subdomain.
    namespace: str = Path(max_length=63),
    kind: str = Path(max_length=63),
    name: str = Path(max_length=253),
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        got = funnel_views.workload_funnel(conn, cluster_id, namespace, kind, name)
    if got is None:
        raise not_found(f"workload {kind}/{name} in namespace {namespace} of cluster {cluster_id} does not exist")
    return got
