"""Workloads: where they run, their pods and containers, findings and processes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from vigil.service.store import queries
from vigil.service.store import risk as risk_store
from vigil.service.ui import params, web

router = APIRouter()


@router.get("/workloads")
def workloads(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = queries.WorkloadFilter(
        cluster_id=params.text(q, "cluster"),
        namespace=params.text(q, "namespace"),
        kind=params.text(q, "kind"),
        text=params.text(q, "q"),
    )
    sort, desc = params.sort(q, queries.WORKLOAD_SORTS, "name")
    with request.app.state.engine.connect() as conn:
        with params.cursor_checked():
            page = queries.console_workloads(conn, f, sort, desc, params.cursor(q), params.page_size(q))
        choices = queries.finding_filter_choices(conn)
    return web.render(request, "workloads.html", v, page=page, f=f, sort=sort, desc=desc, clusters=choices["clusters"])


@router.get("/workloads/{cluster_id}/{namespace}/{kind}/{name}")
def workload(cluster_id: str, namespace: str, kind: str, name: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    key = (cluster_id, namespace, kind, name)
    with request.app.state.engine.connect() as conn:
        w = queries.get_workload(conn, *key)
        if w is None:
            raise web.Refused(404, f"workload {kind}/{name} in namespace {namespace} of cluster {cluster_id} does not exist")
        pods = queries.list_pods(conn, cluster_id, namespace, None, kind, name, None, 500)
        found = queries.console_findings(
            conn, queries.FindingFilter(workload=key, statuses=("open", "resolved", "suppressed")), queries.finding_sort("severity", False), None, 500
        )
        processes = queries.console_processes(conn, queries.ProcessFilter(workload=key), "last_seen", True, None, 200)
        risk_store.attach_risk(conn, found.items)
        w["risk"] = risk_store.workload_risk(conn, [key])[key]
    # Riskiest first: the order triage works in.
    found.items.sort(key=lambda f: (f["status"] != "open", -f["risk"]["score"], f["id"]))
    severities: dict[str, int] = {}
    for f in found.items:
        if f["status"] == "open":
            severities[f["severity"]] = severities.get(f["severity"], 0) + 1
    return web.render(request, "workload.html", v, nav="workloads", w=w, pods=pods.items, more_pods=pods.next is not None, findings=found.items, severities=severities, processes=processes)
