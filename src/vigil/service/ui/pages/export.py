"""CSV export of every console list: ``<list path>.csv`` answers the list's rows, with the filters and
sort of the page it is linked from, all of them (not one page) up to ``MAX_EXPORT_ROWS``.

``export_link`` gives each list page its "Export CSV" link (base.html shows it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from fastapi import APIRouter, Depends, Request

from vigil.service.store.views import clusters as cluster_views
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import images as image_views
from vigil.service.store.views import nodes as node_views
from vigil.service.store.views import processes as process_views
from vigil.service.store.views import workloads as workload_views
from vigil.service.store.views.common import Page, cluster_names
from vigil.service.ui import csv_export, params, web
from vigil.service.ui.cluster_filter import with_cluster_id
from vigil.service.ui.pages import clusters as cluster_pages
from vigil.service.ui.pages import findings as finding_pages
from vigil.service.ui.pages import images as image_pages
from vigil.service.ui.pages import processes as process_pages
from vigil.service.ui.pages import workloads as workload_pages

router = APIRouter()
MAX_EXPORT_ROWS = 100_000
BATCH = 1000
LISTS = ("/clusters", "/images", "/workloads", "/processes", "/findings")
_CLUSTER_PAGE = re.compile(r"/clusters/[^/]+")


def export_link(request: Request) -> str | None:
    """The CSV of the list this page shows, with its filters and sort; None on a page that lists nothing."""
    path = request.url.path
    if path in LISTS:
        target = path + ".csv"
    elif _CLUSTER_PAGE.fullmatch(path):
        target = path + "/nodes.csv"
    else:
        return None
    return params.link(target, request.query_params, limit=None)


web.env.globals["export_link"] = export_link

Fetch = Callable[[str | None, int], Page]


def collect(fetch: Fetch, cap: int) -> tuple[list[dict], bool]:
    """Every row ``fetch`` pages through, up to ``cap``; and whether rows were left beyond it."""
    rows: list[dict] = []
    after: str | None = None
    while True:
        page = fetch(after, min(BATCH, cap - len(rows)))
        rows += page.items
        if page.next is None:
            return rows, False
        if len(rows) >= cap:
            return rows, True
        after = page.next


def _workload_text(item: dict) -> str | None:
    w = item.get("workload")
    return f"{w['kind']}/{w['name']}" if w and w.get("kind") else None


def _risk(item: dict) -> object:
    risk = item.get("risk")
    return risk["score"] if risk else None


def findings_table(conn, q, cap: int) -> csv_export.Table:
    f = with_cluster_id(conn, finding_pages.finding_filter(q))
    sort = finding_views.finding_sort(*finding_pages.finding_sort(q))
    rows, capped = collect(lambda after, n: finding_views.list_findings(conn, f, sort, after, n, names=True), cap)
    header = (
        "id",
        "severity",
        "type",
        "risk",
        "runtime",
        "subject",
        "cluster",
        "namespace",
        "workload",
        "image",
        "status",
        "status reason",
        "first seen",
        "last seen",
    )
    out: list[Sequence[object]] = [
        (
            r["id"],
            r["severity"],
            r["type"],
            _risk(r),
            (r.get("runtime") or {}).get("state"),
            r["subject"],
            r["cluster_name"],
            r["namespace"],
            _workload_text(r),
            r["image_ref"],
            r["status"],
            r["status_reason"],
            r["first_seen_at"],
            r["last_seen_at"],
        )
        for r in rows
    ]
    return csv_export.Table("findings", header, out, capped, cap)


def images_table(conn, q, cap: int) -> csv_export.Table:
    f = with_cluster_id(conn, image_pages.image_filter(q))
    sort, desc = image_pages.image_sort(q)

    def fetch(after, n):
        page = image_views.list_images(conn, f, sort, desc, after, n, with_findings=True)
        counts = image_views.image_vulnerability_counts(conn, [i["id"] for i in page.items])
        for i in page.items:
            i.update(counts[i["id"]])
        return page

    rows, capped = collect(fetch, cap)
    header = (
        "id",
        "image",
        "registry",
        "repository",
        "tag",
        "digest",
        "integrity",
        "scan",
        *(f"{s} vulnerabilities" for s in ("critical", "high", "medium", "low")),
        "malicious",
        "running vulnerabilities",
        "open findings",
        "containers",
        "workloads",
        "clusters",
        "risk",
        "first seen",
    )
    out: list[Sequence[object]] = [
        (
            r["id"],
            r["ref"],
            r["registry"],
            r["repository"],
            r["tag"],
            r["digest"],
            r["integrity"]["status"],
            r.get("scan_status"),
            *(r["vulnerabilities"].get(s, 0) for s in ("critical", "high", "medium", "low")),
            r.get("malicious", 0),
            r["running_vulnerabilities"],
            r["open_findings"],
            r["usage"]["containers"],
            r["usage"]["workloads"],
            r["usage"]["clusters"],
            _risk(r),
            r["first_seen_at"],
        )
        for r in rows
    ]
    return csv_export.Table("images", header, out, capped, cap)


def workloads_table(conn, q, cap: int) -> csv_export.Table:
    f = with_cluster_id(conn, workload_pages.workload_filter(q))
    sort, desc = workload_pages.workload_sort(q)
    rows, capped = collect(
        lambda after, n: workload_views.list_workloads(conn, f, sort, desc, after, n, with_findings=True), cap
    )
    header = ("cluster", "namespace", "kind", "name", "pods", "containers", "open findings", "risk", "updated")
    out: list[Sequence[object]] = [
        (
            r["cluster_name"],
            r["namespace"],
            r["kind"],
            r["name"],
            r["pods"],
            r["containers"],
            r["open_findings"],
            _risk(r),
            r["updated_at"],
        )
        for r in rows
    ]
    return csv_export.Table("workloads", header, out, capped, cap)


def processes_table(conn, q, cap: int) -> csv_export.Table:
    f = with_cluster_id(conn, process_pages.process_filter(q))
    sort, desc = process_pages.process_sort(q)
    rows, capped = collect(lambda after, n: process_views.list_executables(conn, f, sort, desc, after, n), cap)
    header = (
        "path",
        "sha256",
        "kind",
        "cluster",
        "namespace",
        "workload",
        "image",
        "argv sample",
        "count",
        "containers",
        "first seen",
        "last seen",
        "state",
    )
    out: list[Sequence[object]] = [
        (
            r["path"],
            r["sha256"],
            r["kind"],
            r["cluster_name"],
            r["namespace"] or None,
            _workload_text(r),
            r["image_ref"],
            " ".join(r["argv"] or []),
            r["count"],
            r["containers"],
            r["first_seen_at"],
            r["last_seen_at"],
            r["state"],
        )
        for r in rows
    ]
    return csv_export.Table("processes", header, out, capped, cap)


def clusters_table(conn, q, cap: int) -> csv_export.Table:
    rows, capped = collect(lambda after, n: cluster_views.list_clusters(conn, after, n), cap)
    ids = [c["id"] for c in rows]
    sensors = node_views.sensor_summary(conn, ids)
    statuses = cluster_pages.NODE_STATUSES
    header = (
        "id",
        "name",
        "status",
        "controller",
        "controller version",
        "last seen",
        "nodes",
        "pods",
        *(f"sensors {s}" for s in statuses),
        "open findings",
    )
    out: list[Sequence[object]] = []
    for c in rows:
        counts = finding_views.finding_counts(conn, c["id"])
        out.append(
            (
                c["id"],
                c["name"],
                c["status"],
                c["controller"]["status"],
                c["controller"]["version"],
                c["last_seen_at"],
                c["nodes"],
                c["pods"],
                *(sensors[c["id"]].get(s, 0) for s in statuses),
                sum(sum(t.values()) for t in counts.values()),
            )
        )
    return csv_export.Table("clusters", header, out, capped, cap)


def nodes_table(conn, cluster_id: str, q, cap: int) -> csv_export.Table:
    f = node_views.NodeFilter(cluster_id, params.choice(q, "sensor", cluster_pages.NODE_STATUSES), params.text(q, "q"))
    rows, capped = collect(lambda after, n: node_views.list_nodes(conn, f, after, n), cap)
    header = (
        "node",
        "sensor",
        "sensor error",
        "sensor version",
        "last sensor heartbeat",
        "kubelet",
        "kernel",
        "os image",
        "architecture",
        "ready",
    )
    out: list[Sequence[object]] = [
        (
            n["name"],
            n["sensor"]["status"],
            n["sensor"]["error"],
            n["sensor"]["version"],
            n["sensor"]["last_heartbeat_at"],
            n["kubelet_version"],
            n["kernel_version"],
            n["os_image"],
            n["architecture"],
            n["conditions"].get("Ready"),
        )
        for n in rows
    ]
    return csv_export.Table(f"nodes-{cluster_id}", header, out, capped, cap)


_TABLES = {
    "findings": findings_table,
    "images": images_table,
    "workloads": workloads_table,
    "processes": processes_table,
    "clusters": clusters_table,
}


def _list_export(name: str):
    def export(request: Request, v: web.Viewer = Depends(web.viewer)):
        with request.app.state.engine.connect() as conn:
            with params.cursor_checked():
                table = _TABLES[name](conn, request.query_params, MAX_EXPORT_ROWS)
        return csv_export.response(table)

    export.__name__ = f"export_{name}"
    return export


for _name in _TABLES:
    router.add_api_route(f"/{_name}.csv", _list_export(_name), methods=["GET"])


@router.get("/clusters/{cluster_id}/nodes.csv")
def export_nodes(cluster_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    with request.app.state.engine.connect() as conn:
        if cluster_id not in cluster_names(conn, [cluster_id]):
            raise web.Refused(404, f"cluster {cluster_id!r} does not exist")
        table = nodes_table(conn, cluster_id, request.query_params, MAX_EXPORT_ROWS)
    return csv_export.response(table)
