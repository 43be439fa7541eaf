"""Overview: open findings by type and severity, riskiest workloads and images, cluster health, trend."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from vigil.service.store import queries
from vigil.service.store.findings import FINDING_TYPES
from vigil.service.ui import web
from vigil.service.ui.chart import line_chart

router = APIRouter()


@router.get("/")
def overview(request: Request, v: web.Viewer = Depends(web.viewer)):
    with request.app.state.engine.connect() as conn:
        counts = queries.finding_counts(conn)
        clusters = queries.list_clusters(conn, None, 100)
        sensors = queries.sensor_summary(conn, [c["id"] for c in clusters.items])
        workloads = queries.top_risky_workloads(conn, 5)
        images = queries.top_risky_images(conn, 5)
        series = queries.open_findings_series(conn, 14)
    by_severity = {s: sum(t.get(s, 0) for t in counts.values()) for s in queries.SEVERITIES}
    types = [t for t in FINDING_TYPES if t in counts] + sorted(t for t in counts if t not in FINDING_TYPES)
    return web.render(
        request,
        "overview.html",
        v,
        counts=counts,
        types=types,
        by_severity=by_severity,
        total_open=sum(by_severity.values()),
        clusters=clusters.items,
        more_clusters=clusters.next is not None,
        sensors=sensors,
        risky_workloads=workloads,
        risky_images=images,
        chart=line_chart(series),
    )
