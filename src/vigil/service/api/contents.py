"""Image contents: scan status, packages, vulnerabilities and the file manifest of each image;
the advisory database's status and an on-demand reload; an on-demand scanner pass."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from vigil.model.findings import ADVISORY_SEVERITIES
from vigil.service.api.deps import admin, contents_analyzer, reader
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, csv_values
from vigil.service.api.responses import ViewRoute, error_response
from vigil.service.jobs.contents import VulnerabilityAnalyzer
from vigil.service.store import contents as store
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.schema import images
from vigil.service.store.tokens import Principal
from vigil.wire.views import (
    ContentPassReport,
    ImageFile,
    IntelReload,
    Package,
    Page,
    ScanOverview,
    ScanState,
    VulnerabilityPage,
)

router = APIRouter(prefix="/api/v1", tags=["contents"], route_class=ViewRoute)

Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size")
After = Query(None, description="cursor from the previous page's `next`")
SEVERITY_LEVELS = tuple(s.value for s in ADVISORY_SEVERITIES)


NOT_SCANNED: dict[int | str, dict[str, Any]] = {
    409: error_response("The image is not scanned yet (or its scan failed); `detail` says which")
}


def _digest_of(conn, image_id: int) -> str:
    row = conn.execute(select(images.c.digest).where(images.c.id == image_id)).first()
    if row is None:
        raise not_found(f"image {image_id} does not exist")
    return row.digest


def _scanned_digest(conn, image_id: int) -> str:
    """The digest whose contents are listed; 409 while the image is not scanned yet."""
    digest = _digest_of(conn, image_id)
    status = store.scan_status(conn, digest)
    if status["status"] != "done":
        detail = f"image {image_id} is not scanned yet (scan {status['status']})"
        if status.get("error"):
            detail += f": {status['error']}"
        raise ApiError(409, "not_scanned", detail)
    return digest


@router.get(
    "/images/{image_id}/scan",
    response_model=ScanState,
    summary="One image's scan: pending, scanning, done, failed or not_scanned (by policy; the error says why)",
)
def image_scan(image_id: RowId, request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        return store.scan_status(conn, _digest_of(conn, image_id))


@router.get(
    "/images/{image_id}/packages",
    response_model=Page[Package],
    responses=NOT_SCANNED,
    summary="Packages in an image with the files each owns; paged by package id",
)
def image_packages(
    image_id: RowId,
    request: Request,
    type: str | None = Query(
        None, description="purl type: deb, apk, rpm, pypi, npm, golang, maven, gem, composer, nuget, cargo"
    ),
    name: str | None = None,
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        items, nxt = store.list_packages(conn, _scanned_digest(conn, image_id), type, name, after, limit)
    return {"items": items, "next": nxt}


@router.get(
    "/images/{image_id}/vulnerabilities",
    response_model=VulnerabilityPage,
    responses=NOT_SCANNED,
    summary="Known vulnerabilities and malicious packages in an image, with ids, aliases, fixed versions, links",
)
def image_vulnerabilities(
    image_id: RowId,
    request: Request,
    severity: str | None = Query(None, description="e.g. critical,high"),
    malicious: bool | None = Query(None, description="only malicious packages (true) or only the others (false)"),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    wanted = csv_values("severity", severity, SEVERITY_LEVELS)
    with request.app.state.engine.connect() as conn:
        digest = _scanned_digest(conn, image_id)
        status = store.scan_status(conn, digest)
        items, nxt = store.list_vulnerabilities(conn, digest, wanted, malicious, after, limit)
    return {"items": items, "next": nxt, "matched_revision": status["matched_revision"]}


@router.get(
    "/images/{image_id}/files",
    response_model=Page[ImageFile],
    responses=NOT_SCANNED,
    summary="An image's file manifest (path, sha256, size, mode; symlinks with targets); paged by path",
)
def image_files(
    image_id: RowId,
    request: Request,
    prefix: str | None = Query(None, description="only paths starting with this, e.g. /usr/bin/"),
    sha256: str | None = Query(None, pattern="^[0-9a-f]{64}$", description="only files with this content"),
    kind: str | None = Query(None, pattern="^(file|symlink)$"),
    limit: int = Limit,
    after: str | None = After,
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        items, nxt = store.list_files(conn, _scanned_digest(conn, image_id), prefix, sha256, kind, after, limit)
    return {"items": items, "next": nxt}


@router.get(
    "/scans",
    response_model=ScanOverview,
    summary="How many images are pending, scanning, done and failed; the advisory database in use",
)
def scans(
    request: Request, who: Principal = Depends(reader), analyzer: VulnerabilityAnalyzer = Depends(contents_analyzer)
) -> dict:
    with request.app.state.engine.connect() as conn:
        counts = store.scan_counts(conn)
    return {"scans": counts, "intel": analyzer.intel.status()}


@router.post(
    "/scans/run",
    response_model=ContentPassReport,
    summary="Queue running images, scan what is queued (in-process scanner), match, update findings (admin)",
)
async def run_scans(
    who: Principal = Depends(admin), analyzer: VulnerabilityAnalyzer = Depends(contents_analyzer)
) -> dict:
    report = await run_in_threadpool(analyzer.run_pass, scan=True)
    return report.as_dict()


@router.post(
    "/intel/reload",
    response_model=IntelReload,
    summary="Reload the advisory database now and re-match stored packages (admin)",
)
async def reload_intel(
    who: Principal = Depends(admin), analyzer: VulnerabilityAnalyzer = Depends(contents_analyzer)
) -> dict:
    report = await run_in_threadpool(analyzer.run_pass, force_reload=True)
    return {"intel": analyzer.intel.status(), **report.as_dict()}
