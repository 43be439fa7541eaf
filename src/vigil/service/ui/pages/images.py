"""Images: what runs, from where, with its trust, integrity, contents and blast radius."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from vigil.service.store import queries
from vigil.service.store.findings import FINDING_TYPES
from vigil.service.store.pagination import BadCursor
from vigil.service.ui import params, sections, web

router = APIRouter()
TRUST_TYPES = ("untrusted_registry",) + queries.INTEGRITY_TYPES


@router.get("/images")
def images(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = queries.ImageFilter(
        registry=params.text(q, "registry"),
        text=params.text(q, "q"),
        cluster_id=params.text(q, "cluster"),
        running_only=params.flag(q, "running"),
        finding_types=params.multi(q, "finding", FINDING_TYPES),
    )
    sort, desc = params.sort(q, queries.IMAGE_SORTS, "ref")
    with request.app.state.engine.connect() as conn:
        try:
            page = queries.console_images(conn, f, sort, desc, params.cursor(q), params.page_size(q))
        except BadCursor as exc:
            raise params.BadParam(f"after: {exc}") from None
        choices = queries.finding_filter_choices(conn)
    return web.render(request, "images.html", v, page=page, f=f, sort=sort, desc=desc, clusters=choices["clusters"], FINDING_TYPES=FINDING_TYPES)


@router.get("/images/{image_id}")
def image(image_id: int, request: Request, v: web.Viewer = Depends(web.viewer)):
    with request.app.state.engine.connect() as conn:
        img = queries.image_detail(conn, image_id)
        if img is None:
            raise web.Refused(404, f"image {image_id} does not exist")
        every_status = ("open", "resolved", "suppressed")
        trust = queries.console_findings(
            conn, queries.FindingFilter(types=TRUST_TYPES, image_pk=image_id, statuses=every_status), queries.finding_sort("severity", False), None, 200
        )
        vulns = queries.console_findings(
            conn, queries.FindingFilter(types=queries.CONTENT_TYPES, image_pk=image_id, statuses=every_status), queries.finding_sort("severity", False), None, 500
        )
        other = queries.console_findings(
            conn,
            queries.FindingFilter(types=tuple(t for t in FINDING_TYPES if t not in TRUST_TYPES + queries.CONTENT_TYPES), image_pk=image_id, statuses=every_status),
            queries.finding_sort("severity", False),
            None,
            200,
        )
        processes = queries.console_processes(conn, queries.ProcessFilter(image_pk=image_id), "last_seen", True, None, 200)
        provenance = sections.image_section("provenance", conn, img)
        packages = sections.image_section("packages", conn, img)
    if provenance is None:
        provenance = img["extra"].get("provenance") or img["extra"].get("labels")
    # Running vulnerabilities are vulnerable packages seen executing; mark those packages.
    running_subjects = {f["subject"] for f in vulns.items if f["type"] == "running_vulnerability" and f["status"] == "open"}
    return web.render(
        request,
        "image.html",
        v,
        nav="images",
        img=img,
        trust=trust.items,
        vulns=vulns.items,
        other=other.items,
        running_subjects=running_subjects,
        processes=processes,
        provenance=provenance,
        packages=packages,
    )
