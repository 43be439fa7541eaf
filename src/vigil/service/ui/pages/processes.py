"""Processes (Runtime Impact): what executed, grouped by executable per image and workload."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import processes as process_views
from vigil.service.ui import params, web

router = APIRouter()
KINDS = ("executable", "script", "library")


def process_filter(q) -> process_views.ProcessFilter:
    """The processes list's filters, from its query parameters (the page and its CSV export)."""
    return process_views.ProcessFilter(
        cluster_id=params.text(q, "cluster"),
        namespace=params.text(q, "namespace"),
        kind=params.choice(q, "kind", KINDS),
        text=params.text(q, "q"),
        sha256=params.text(q, "sha256"),
        image_pk=params.integer(q, "image"),
        running_only=params.flag(q, "running"),
    )


def process_sort(q) -> tuple[str, bool]:
    return params.sort(q, process_views.PROCESS_SORTS, "-last_seen")


@router.get("/processes")
def processes(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = process_filter(q)
    sort, desc = process_sort(q)
    with request.app.state.engine.connect() as conn:
        with params.cursor_checked():
            page = process_views.list_executables(conn, f, sort, desc, params.cursor(q), params.page_size(q))
        choices = finding_views.finding_filter_choices(conn)
    return web.render(
        request, "processes.html", v, page=page, f=f, sort=sort, desc=desc, clusters=choices["clusters"], KINDS=KINDS
    )
