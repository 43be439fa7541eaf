"""Images: what runs, from where, with its trust, integrity, contents and blast radius."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from vigil.model.findings import (
    FINDING_STATUSES,
    FINDING_TYPES,
    INTEGRITY_TYPES,
    SIGNATURE_TYPES,
    VULNERABILITY_TYPES,
    FindingType,
)
from vigil.service.store import contents
from vigil.service.store.integrity import summaries as integrity_summaries
from vigil.service.store.pagination import BadCursor, decode_cursor
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import funnel as funnel_views
from vigil.service.store.views import images as image_views
from vigil.service.store.views import processes as process_views
from vigil.service.store.views import signatures as signature_views
from vigil.service.store.views.common import cluster_names
from vigil.service.ui import params, web
from vigil.service.ui.cluster_filter import with_cluster_id

router = APIRouter()
CONTENTS_PAGE = 50


def image_filter(q) -> image_views.ImageFilter:
    """The images list's filters, from its query parameters (the page and its CSV export)."""
    return image_views.ImageFilter(
        registry=params.text(q, "registry"),
        text=params.text(q, "q"),
        cluster_id=params.text(q, "cluster"),
        running_only=params.flag(q, "running"),
        finding_types=params.multi(q, "finding", FINDING_TYPES),
    )


def image_sort(q) -> tuple[str, bool]:
    return params.sort(q, image_views.IMAGE_SORTS, "ref")


@router.get("/images")
def images(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = image_filter(q)
    sort, desc = image_sort(q)
    with request.app.state.engine.connect() as conn:
        f = with_cluster_id(conn, f)
        with params.cursor_checked():
            page = image_views.list_images(
                conn, f, sort, desc, params.cursor(q), params.page_size(q), with_findings=True
            )
        choices = finding_views.finding_filter_choices(conn)
        _count_vulnerabilities(conn, page.items)
    return web.render(
        request,
        "images.html",
        v,
        page=page,
        f=f,
        sort=sort,
        desc=desc,
        clusters=choices["clusters"],
        FINDING_TYPES=FINDING_TYPES,
    )


def _count_vulnerabilities(conn, items: list[dict]) -> None:
    """Distinct vulnerabilities of each image's digest (contents), not findings (one per workload)."""
    counts = image_views.image_vulnerability_counts(conn, [i["id"] for i in items])
    for i in items:
        i.update(counts[i["id"]])
        i["scan_verdict"] = image_views.scan_verdict(
            i["scan_status"], sum(i["vulnerabilities"].values()), i.get("coverage")
        )


def _id_cursor(q, name: str) -> str | None:
    """A packages or vulnerabilities page cursor: one id this service issued."""
    raw = params.text(q, name, 512)
    if raw is None:
        return None
    try:
        values = decode_cursor(raw, 1)
    except BadCursor as exc:
        raise params.BadParam(f"{name}: {exc}") from None
    if not isinstance(values[0], int):
        raise params.BadParam(f"{name}: cursor {raw[:64]!r} is not one this service issued for this listing")
    return raw


def _contents(conn, img: dict, q) -> dict:
    """The digest's scan status, a page of its packages (each with its vulnerabilities) and a page of
    its vulnerabilities (each with the runtime state of its findings across workloads)."""
    scan = contents.scan_status(conn, img["digest"])
    out: dict[str, Any] = {"scan": scan, "packages": [], "packages_next": None, "vulns": [], "vulns_next": None}
    if scan["status"] != "done":
        return out
    out["packages"], out["packages_next"] = contents.list_packages(
        conn, img["digest"], None, None, _id_cursor(q, "pkg_after"), CONTENTS_PAGE
    )
    by_package = image_views.package_vulnerability_ids(conn, [p["id"] for p in out["packages"]])
    for p in out["packages"]:
        p["vulnerabilities"] = by_package.get(p["id"], [])
    out["vulns"], out["vulns_next"] = contents.list_vulnerabilities(
        conn, img["digest"], (), None, _id_cursor(q, "vuln_after"), CONTENTS_PAGE
    )
    states = image_views.image_runtime_states(conn, img["id"])
    for v in out["vulns"]:
        v["runtime"] = states.get((v["package"]["name"], v["package"]["version"], v["id"]), {})
        v["runtime_state"] = image_views.overall_runtime_state(v["runtime"])
    return out


@router.get("/images/{image_id}")
def image(image_id: params.RowId, request: Request, v: web.Viewer = Depends(web.viewer)):
    with request.app.state.engine.connect() as conn:
        img = image_views.image_detail(conn, image_id)
        if img is None:
            raise web.Refused(404, f"image {image_id} does not exist")
        trust = finding_views.list_findings(
            conn,
            finding_views.FindingFilter(types=INTEGRITY_TYPES, image_pk=image_id, statuses=FINDING_STATUSES),
            finding_views.finding_sort("severity", False),
            None,
            200,
            names=True,
        )
        vulns = finding_views.list_findings(
            conn,
            finding_views.FindingFilter(types=VULNERABILITY_TYPES, image_pk=image_id, statuses=FINDING_STATUSES),
            finding_views.finding_sort("severity", False),
            None,
            500,
            names=True,
        )
        other = finding_views.list_findings(
            conn,
            finding_views.FindingFilter(
                types=tuple(
                    t for t in FINDING_TYPES if t not in INTEGRITY_TYPES + VULNERABILITY_TYPES + SIGNATURE_TYPES
                ),
                image_pk=image_id,
                statuses=FINDING_STATUSES,
            ),
            finding_views.finding_sort("severity", False),
            None,
            200,
            names=True,
        )
        signed = finding_views.list_findings(
            conn,
            finding_views.FindingFilter(types=SIGNATURE_TYPES, image_pk=image_id, statuses=FINDING_STATUSES),
            finding_views.finding_sort("severity", False),
            None,
            200,
            names=True,
        )
        signatures = signature_views.image_signatures(conn, image_id)
        by_image = process_views.ProcessFilter(image_pk=image_id)
        processes = process_views.list_executables(conn, by_image, "last_seen", True, None, 200)
        reach = process_views.sensor_reach(conn, process_views.image_nodes(conn, image_id))
        integrity = integrity_summaries(conn, [image_id])[image_id]
        names = cluster_names(conn, {c["cluster_id"] for c in integrity["clusters"]})
        for c in integrity["clusters"]:
            c["cluster_name"] = names.get(c["cluster_id"], c["cluster_id"])
        provenance = integrity.get("provenance")
        img.update(image_views.image_vulnerability_counts(conn, [image_id])[image_id])
        content = _contents(conn, img, request.query_params)
        funnel = funnel_views.image_funnel(conn, image_id)
    running_href = "/findings?" + urlencode({"type": FindingType.RUNNING_VULNERABILITY, "image": image_id})
    return web.render(
        request,
        "image.html",
        v,
        nav="images",
        img=img,
        trust=trust.items,
        vulns=vulns.items,
        other=other.items,
        signed=signed.items,
        signatures=signatures,
        processes=processes,
        sensor_reach=reach,
        provenance=provenance,
        integrity=integrity,
        # One source for the verdict and the "not reported" note: the registry check's stored verdicts.
        checked=any(c["status"] != "pending" for c in integrity["clusters"]),
        content=content,
        funnel=funnel,
        running_href=running_href,
    )
