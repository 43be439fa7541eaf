"""Workloads: where they run, their pods and containers, findings and processes."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from vigil.model.findings import FindingType
from vigil.service.store import prevention as prevention_store
from vigil.service.store import risk as risk_store
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import funnel as funnel_views
from vigil.service.store.views import pods as pod_views
from vigil.service.store.views import processes as process_views
from vigil.service.store.views import workloads as workload_views
from vigil.service.ui import params, web
from vigil.service.ui.cluster_filter import with_cluster_id

router = APIRouter()


def workload_filter(q) -> workload_views.WorkloadFilter:
    """The workloads list's filters, from its query parameters (the page and its CSV export)."""
    return workload_views.WorkloadFilter(
        cluster_id=params.text(q, "cluster"),
        namespace=params.text(q, "namespace"),
        kind=params.text(q, "kind"),
        text=params.text(q, "q"),
    )


def workload_sort(q) -> tuple[str, bool]:
    return params.sort(q, workload_views.WORKLOAD_SORTS, "name")


@router.get("/workloads")
def workloads(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = workload_filter(q)
    sort, desc = workload_sort(q)
    with request.app.state.engine.connect() as conn:
        f = with_cluster_id(conn, f)
        with params.cursor_checked():
            page = workload_views.list_workloads(
                conn, f, sort, desc, params.cursor(q), params.page_size(q), with_findings=True
            )
        choices = finding_views.finding_filter_choices(conn)
    return web.render(request, "workloads.html", v, page=page, f=f, sort=sort, desc=desc, clusters=choices["clusters"])


@router.get("/workloads/{cluster_id}/{namespace}/{kind}/{name}")
def workload(
    cluster_id: str, namespace: str, kind: str, name: str, request: Request, v: web.Viewer = Depends(web.viewer)
):
    key = (cluster_id, namespace, kind, name)
    with request.app.state.engine.connect() as conn:
        w = workload_views.get_workload(conn, *key)
        if w is None:
            raise web.Refused(
                404, f"workload {kind}/{name} in namespace {namespace} of cluster {cluster_id} does not exist"
            )
        pods = pod_views.list_pods(conn, pod_views.PodFilter(cluster_id, namespace, None, kind, name), None, 500)
        found = finding_views.list_findings(
            conn,
            finding_views.FindingFilter(workload=key, statuses=("open", "resolved", "suppressed")),
            finding_views.finding_sort("severity", False),
            None,
            500,
            names=True,
        )
        in_workload = process_views.ProcessFilter(workload=key)
        processes = process_views.list_executables(conn, in_workload, "last_seen", True, None, 200)
        reach = process_views.sensor_reach(conn, {(p["cluster_id"], p["node_name"]) for p in pods.items})
        w["risk"] = risk_store.workload_risk(conn, [key])[key]
        enforced = prevention_store.workload_enforcement(conn, *key)
        funnel = funnel_views.workload_funnel(conn, *key)
    # "running" links to the workload's running_vulnerability findings (console filter `workload=<kind>/<name>`).
    running = {
        "type": FindingType.RUNNING_VULNERABILITY,
        "cluster": cluster_id,
        "namespace": namespace,
        "workload": f"{kind}/{name}",
    }
    running_href = "/findings?" + urlencode(running)
    for image in funnel["images"] if funnel else ():
        image["running_href"] = "/findings?" + urlencode({**running, "image": image["image_id"]})
    # Riskiest first: the order triage works in.
    found.items.sort(key=lambda f: (f["status"] != "open", -f["risk"]["score"], f["id"]))
    severities: dict[str, int] = {}
    for f in found.items:
        if f["status"] == "open":
            severities[f["severity"]] = severities.get(f["severity"], 0) + 1
    return web.render(
        request,
        "workload.html",
        v,
        nav="workloads",
        w=w,
        pods=pods.items,
        more_pods=pods.next is not None,
        findings=found.items,
        severities=severities,
        processes=processes,
        sensor_reach=reach,
        enforced=enforced,
        funnel=funnel,
        running_href=running_href,
    )
