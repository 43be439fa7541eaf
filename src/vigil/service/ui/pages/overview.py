"""Overview: open findings by type and severity, riskiest workloads and images, cluster health (with the nodes where
runtime prevention fails open), trend."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from vigil.model.findings import FINDING_TYPES, SEVERITIES
from vigil.service.store import prevention as prevention_store
from vigil.service.store import risk as risk_store
from vigil.service.store.views import clusters as cluster_views
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import images as image_views
from vigil.service.store.views import nodes as node_views
from vigil.service.store.views import overview as overview_views
from vigil.service.ui import web
from vigil.service.ui.chart import line_chart

router = APIRouter()
# Scoring every open finding takes about a second at 10,000 of them; the live overview is fetched
# again by every open browser on every change, so one result is shared until findings change.
# Risk also moves with inventory (exposure, blast radius) and runtime labels, which do not change
# the findings marker: those show within RISK_MAX_AGE_S.
RISK_MAX_AGE_S = 15.0


def _open_risk(request: Request, conn) -> risk_store.OpenRisk:
    marker = finding_views.findings_marker(conn)
    cached = getattr(request.app.state, "console_open_risk", None)
    now = time.monotonic()
    if cached is not None and cached[0] == marker and now - cached[1] < RISK_MAX_AGE_S:
        return cached[2]
    risk = risk_store.open_risk(conn)
    request.app.state.console_open_risk = (marker, now, risk)
    return risk


@router.get("/")
def overview(request: Request, v: web.Viewer = Depends(web.viewer)):
    with request.app.state.engine.connect() as conn:
        counts = finding_views.finding_counts(conn)
        risk = _open_risk(request, conn)
        clusters = cluster_views.list_clusters(conn, None, 100, risk)
        sensors = node_views.sensor_summary(conn, [c["id"] for c in clusters.items])
        workloads = overview_views.riskiest_workloads(conn, 5, risk)
        images = overview_views.riskiest_images(conn, 5, risk)
        series = overview_views.open_findings_series(conn, 14)
        scans = image_views.scan_verdict_counts(conn)
        prevention_off = [n for n in prevention_store.node_enforcement(conn) if n.loud]
    by_severity = {s: sum(t.get(s, 0) for t in counts.values()) for s in SEVERITIES}
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
        prevention_off=prevention_off,
        more_clusters=clusters.next is not None,
        sensors=sensors,
        risky_workloads=workloads,
        risky_images=images,
        chart=line_chart(series),
        scans=scans,
    )
