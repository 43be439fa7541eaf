"""Findings: filtered listing, detail with history, and status changes by admins."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vigil.model.findings import FINDING_STATUSES, FINDING_TYPES, SEVERITIES
from vigil.service.api import stream
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, reader
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, cluster_query, csv_values
from vigil.service.api.responses import ViewRoute, event_stream
from vigil.service.store import findings as finding_store
from vigil.service.store import runtime_labels
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.tokens import Principal
from vigil.service.store.views import findings as finding_views
from vigil.wire.views import Finding, FindingDetail, FindingStreamEvent, Page

router = APIRouter(prefix="/api/v1/findings", tags=["findings"], route_class=ViewRoute)


@router.get(
    "", response_model=Page[Finding], summary="Findings, filtered; comma-separated values for severity, type and status"
)
def list_findings(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    namespace: str | None = None,
    severity: str | None = Query(None, description="e.g. critical,high"),
    type: str | None = Query(None, description="e.g. digest_mismatch,tag_moved"),
    status: str | None = Query(None, description="open, resolved, suppressed"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    after: str | None = Query(None),
    since: datetime | None = Query(
        None, description="only findings changed (opened, severity or status) at or after this ISO 8601 time"
    ),
    runtime: str | None = Query(
        None, description="package findings by runtime label: running, not_observed_running, watching, unwatched"
    ),
    who: Principal = Depends(reader),
) -> dict:
    sev = csv_values("severity", severity, SEVERITIES)
    types = csv_values("type", type, FINDING_TYPES)
    statuses = csv_values("status", status, FINDING_STATUSES)
    runtime_states = csv_values("runtime", runtime, runtime_labels.STATES)
    if since is not None and since.tzinfo is None:
        raise ApiError(
            422,
            "invalid_request",
            f"query.since: {since.isoformat()!r} has no time zone; add Z or an offset (e.g. 2026-01-01T00:00:00Z)",
        )
    with request.app.state.engine.connect() as conn:
        f = finding_views.FindingFilter(
            types=tuple(types), severities=tuple(sev), statuses=tuple(statuses),
            cluster_id=cluster, namespace=namespace, since=since, runtime_states=tuple(runtime_states),
        )  # fmt: skip
        p = finding_views.list_findings(conn, f, finding_views.finding_sort("id", False), after, limit)
    return {"items": p.items, "next": p.next}


# Registered before /{finding_id}, which would otherwise take "stream" for an id.
router.add_api_route(
    "/stream",
    stream.stream_findings,
    methods=["GET"],
    summary="New and changed findings as server-sent events (resume with Last-Event-ID)",
    response_class=StreamingResponse,
    **event_stream(FindingStreamEvent, "Finding changes as server-sent events (event: finding)"),
)


@router.get("/{finding_id}", response_model=FindingDetail, summary="One finding with its history")
def get_finding(finding_id: RowId, request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        f = finding_views.get_finding(conn, finding_id)
    if f is None:
        raise not_found(f"finding {finding_id} does not exist")
    return f


class StatusChange(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["open", "resolved", "suppressed"]
    reason: str = Field(min_length=1, max_length=2000)


@router.post(
    "/{finding_id}/status",
    response_model=FindingDetail,
    summary="Resolve, suppress or reopen a finding (admin)",
    openapi_extra=openapi_body(StatusChange),
)
async def change_status(finding_id: RowId, request: Request, who: Principal = Depends(admin)) -> dict:
    body: StatusChange = await parse_body(request, StatusChange)

    def work() -> dict | None:
        with request.app.state.engine.begin() as conn:
            if not finding_store.set_status(conn, finding_id, body.status, body.reason, f"token:{who.name}"):
                return None
            return finding_views.get_finding(conn, finding_id)

    f = await run_in_threadpool(work)
    if f is None:
        raise not_found(f"finding {finding_id} does not exist")
    return f
