"""Liveness and readiness (the only endpoints that need no token) and metrics (a metrics, viewer or admin token).

Metrics name clusters, routes and rates of work: enough to map a deployment, so not for anyone who can connect.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from vigil import __version__
from vigil.service.api.deps import metrics_reader
from vigil.service.api.responses import ViewRoute, plain_text
from vigil.service.store.db import current_revision, head_revision
from vigil.wire.views import Health, Readiness

router = APIRouter(tags=["health"], route_class=ViewRoute)


# Probes call these without a token; the document's global bearer requirement does not apply.
NO_TOKEN: dict = {"security": []}


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers", openapi_extra=NO_TOKEN)
def healthz() -> dict:
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The store does not answer or its schema is not current"}},
    summary="Readiness: the store answers and its schema is current",
    openapi_extra=NO_TOKEN,
)
def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        rev, head = current_revision(engine), head_revision()
    except Exception as exc:
        return JSONResponse({"status": "not_ready", "detail": f"store unreachable: {exc.__class__.__name__}"}, 503)
    if rev != head:
        return JSONResponse({"status": "not_ready", "detail": f"store schema at {rev}, service needs {head}"}, 503)
    return JSONResponse({"status": "ready", "schema": rev})


@router.get(
    "/metrics",
    summary="Prometheus metrics; needs a token with role metrics, viewer or admin",
    dependencies=[Depends(metrics_reader)],
    include_in_schema=True,
    response_class=PlainTextResponse,
    responses=plain_text(CONTENT_TYPE_LATEST.split(";")[0], "Prometheus text exposition format"),
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
