"""Clusters: controller health and last contact; per cluster, nodes with their sensor status and whether runtime
prevention is in force on them."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.service.store import prevention as prevention_store
from vigil.service.store.credentials import list_credentials, revoke_credential, rotate_credentials
from vigil.service.store.tokens import IssuedToken
from vigil.service.store.views import clusters as cluster_views
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import nodes as node_views
from vigil.service.ui import params, web

log = logging.getLogger(__name__)
router = APIRouter()
NODE_STATUSES = ("monitored", "monitored_with_sensor", "sensor_failed", "disabled")


@router.get("/clusters")
def clusters(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    limit, after = params.page_size(q), params.cursor(q)
    with request.app.state.engine.connect() as conn:
        with params.cursor_checked():
            page = cluster_views.list_clusters(conn, after, limit)
        sensors = node_views.sensor_summary(conn, [c["id"] for c in page.items])
        counts = {c["id"]: finding_views.finding_counts(conn, c["id"]) for c in page.items}
    open_by_cluster = {cid: sum(sum(t.values()) for t in c.values()) for cid, c in counts.items()}
    return web.render(
        request,
        "clusters.html",
        v,
        clusters=page.items,
        next=page.next,
        sensors=sensors,
        open_findings=open_by_cluster,
        NODE_STATUSES=NODE_STATUSES,
    )


@router.get("/clusters/{cluster_id}")
def cluster(cluster_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    return _cluster_page(request, v, cluster_id)


def _cluster_page(
    request: Request,
    v: web.Viewer,
    cluster_id: str,
    rotated: tuple[IssuedToken, datetime] | None = None,
    http_status: int = 200,
):
    q = request.query_params
    status = params.choice(q, "sensor", NODE_STATUSES)
    text = params.text(q, "q")
    limit, after = params.page_size(q), params.cursor(q)
    with request.app.state.engine.connect() as conn:
        found = [c for c in cluster_views.list_clusters(conn, None, 1000).items if c["id"] == cluster_id]
        if not found:
            raise web.Refused(404, f"cluster {cluster_id!r} does not exist")
        with params.cursor_checked():
            nodes = node_views.list_nodes(conn, node_views.NodeFilter(cluster_id, status, text), after, limit)
        summary = node_views.sensor_summary(conn, [cluster_id])[cluster_id]
        counts = finding_views.finding_counts(conn, cluster_id)
        credentials = list_credentials(conn, cluster_id) if v.is_admin else []
        enforcement = {n.node_name: n for n in prevention_store.node_enforcement(conn, cluster_id)}
    return web.render(
        request,
        "cluster.html",
        v,
        status=http_status,
        nav="clusters",
        cluster=found[0],
        nodes=nodes,
        summary=summary,
        open_total=sum(sum(t.values()) for t in counts.values()),
        NODE_STATUSES=NODE_STATUSES,
        sensor_filter=status,
        text=text,
        credentials=credentials,
        enforcement=enforcement,
        prevention_off=[n for n in enforcement.values() if n.loud],
        rotated=rotated[0] if rotated else None,
        rotated_until=rotated[1] if rotated else None,
    )


@router.post("/clusters/{cluster_id}/credentials/rotate")
async def rotate(cluster_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work():
        with request.app.state.engine.begin() as conn:
            return rotate_credentials(conn, cluster_id)

    try:
        cred, until = await run_in_threadpool(work)
    except LookupError:
        raise web.Refused(404, f"cluster {cluster_id!r} does not exist") from None
    log.info(
        "cluster credential rotated in console",
        extra={"cluster_id": cluster_id, "credential_id": cred.id, "by": v.principal.token_id},
    )
    # The new credential is shown once, in this response only; it is never put in a URL or a log.
    return await run_in_threadpool(_cluster_page, request, v, cluster_id, (cred, until), 201)


@router.post("/clusters/{cluster_id}/credentials/{credential_id}/revoke")
async def revoke(cluster_id: str, credential_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return revoke_credential(conn, cluster_id, credential_id)

    if not await run_in_threadpool(work):
        raise web.Refused(404, f"cluster {cluster_id!r} has no live credential {credential_id!r}")
    return web.redirect(f"/clusters/{cluster_id}#credentials")
