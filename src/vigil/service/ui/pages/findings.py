"""Findings: filtered, sorted, live; detail with evidence and history; status changes by admins."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.model.findings import (
    FINDING_STATUSES,
    FINDING_TYPES,
    REGISTRY_VIOLATION_TYPES,
    SEVERITIES,
    FindingStatus,
    FindingType,
)
from vigil.service.store import findings as finding_store
from vigil.service.store.views import common
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import images as image_views
from vigil.service.ui import params, web
from vigil.service.ui.cluster_filter import with_cluster_id

router = APIRouter()
log = logging.getLogger("vigil.console")

# Quick filters: one click to the views triage starts from (label, query parameters).
QUICK_FILTERS = (
    ("Untrusted registry", {"type": FindingType.UNTRUSTED_REGISTRY}),
    ("Integrity violation", {"type": ",".join(REGISTRY_VIOLATION_TYPES)}),
    ("Running vulnerabilities", {"type": FindingType.RUNNING_VULNERABILITY}),
    ("Malicious", {"type": FindingType.MALICIOUS_PACKAGE}),
)
STATUS_ANY = "any"
MAX_REASON = 2000


def finding_filter(q) -> finding_views.FindingFilter:
    raw_status = params.multi(q, "status", FINDING_STATUSES + (STATUS_ANY,))
    # No status in the URL means the triage view: open findings.
    statuses = () if STATUS_ANY in raw_status else (raw_status or (FindingStatus.OPEN,))
    return finding_views.FindingFilter(
        types=params.multi(q, "type", FINDING_TYPES),
        severities=params.multi(q, "severity", SEVERITIES),
        statuses=statuses,
        cluster_id=params.text(q, "cluster"),
        namespace=params.text(q, "namespace"),
        image_pk=params.integer(q, "image"),
        workload=_workload(q),
        running_only=params.flag(q, "running"),
        text=params.text(q, "q"),
    )


def _workload(q) -> tuple[str, str, str, str] | None:
    """``workload=<kind>/<name>``, which names a workload only with its ``cluster`` and ``namespace``."""
    raw = params.text(q, "workload", 320)
    if raw is None:
        return None
    kind, _, name = raw.partition("/")
    cluster, namespace = params.text(q, "cluster"), params.text(q, "namespace")
    if not kind or not name or cluster is None or namespace is None:
        raise params.BadParam(f"workload: {raw!r} must be <kind>/<name>, with cluster and namespace given")
    return (cluster, namespace, kind, name)


def finding_sort(q) -> tuple[str, bool]:
    return params.sort(q, finding_views.FINDING_SORTS, "severity")


@router.get("/findings")
def findings(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = finding_filter(q)
    sort, desc = finding_sort(q)
    with request.app.state.engine.connect() as conn:
        f = with_cluster_id(conn, f)
        with params.cursor_checked():
            sorting = finding_views.finding_sort(sort, desc)
            page = finding_views.list_findings(conn, f, sorting, params.cursor(q), params.page_size(q), names=True)
        choices = finding_views.finding_filter_choices(conn)
    quick = [(label, params.link("/findings", _empty(), **qp), _active(f, qp)) for label, qp in QUICK_FILTERS]
    return web.render(
        request,
        "findings.html",
        v,
        page=page,
        f=f,
        sort=sort,
        desc=desc,
        quick=quick,
        clusters=choices["clusters"],
        namespaces=choices["namespaces"],
        FINDING_TYPES=FINDING_TYPES,
        STATUSES=FINDING_STATUSES,
        status_value=",".join(params.multi(q, "status", FINDING_STATUSES + (STATUS_ANY,))),
        type_value=",".join(f.types),
    )


class _empty:
    @staticmethod
    def multi_items():
        return []


def _active(f: finding_views.FindingFilter, qp: dict) -> bool:
    return ",".join(f.types) == qp["type"]


@router.get("/findings/{finding_id}")
def finding(finding_id: params.RowId, request: Request, v: web.Viewer = Depends(web.viewer)):
    return _finding_page(request, v, finding_id)


def _finding_page(request: Request, v: web.Viewer, finding_id: int, error: str | None = None, status: int = 200):
    with request.app.state.engine.connect() as conn:
        f = finding_views.get_finding(conn, finding_id)
        if f is None:
            raise web.Refused(404, f"finding {finding_id} does not exist")
        img = image_views.image_detail(conn, f["image_pk"]) if f["image_pk"] else None
        cluster_name = common.cluster_names(conn, [f["cluster_id"]]).get(f["cluster_id"]) if f["cluster_id"] else None
    return web.render(
        request, "finding.html", v, status=status, nav="findings", f=f, img=img, cluster_name=cluster_name, error=error
    )


@router.post("/findings/{finding_id}/status")
async def change_status(finding_id: params.RowId, request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    status = str(form.get("status") or "")
    reason = str(form.get("reason") or "").strip()
    if status not in FINDING_STATUSES:
        return _finding_page(
            request, v, finding_id, f"status {status!r} is not one of {', '.join(FINDING_STATUSES)}", 400
        )
    if not reason or len(reason) > MAX_REASON:
        return _finding_page(request, v, finding_id, f"a reason of 1 to {MAX_REASON} characters is required", 400)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return finding_store.set_status(conn, finding_id, status, reason, f"console:{v.principal.name}")

    if not await run_in_threadpool(work):
        raise web.Refused(404, f"finding {finding_id} does not exist")
    log.info(
        "finding status changed in console",
        extra={"finding_id": finding_id, "status": status, "token_id": v.principal.token_id},
    )
    return web.redirect(f"/findings/{finding_id}")
