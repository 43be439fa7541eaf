"""HTTP: the suspicious-exec rule table, its allow-list (admins change it), the analyzer's status."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from vigil.service.analysis.runtime.rules import RULES, check_allow_entry
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, reader, runtime_analyzer
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.runtime import RuntimeAnalyzer
from vigil.service.store import runtime_analysis as store
from vigil.service.store.tokens import Principal
from vigil.wire.views import AllowEntry, Items, Rule, RuntimeStatus

router = APIRouter(prefix="/api/v1/runtime", tags=["runtime"], route_class=ViewRoute)


class AllowEntryIn(BaseModel):
    model_config = {"extra": "forbid"}
    rule: str = Field(
        min_length=1, max_length=64, description="a rule id from GET /api/v1/runtime/rules, or * for every rule"
    )
    cluster: str = Field("", max_length=253, description="cluster id or name; empty: any")
    namespace: str = Field("", max_length=63, description="empty: any")
    workload: str = Field("", max_length=253, description="workload name; empty: any")
    labels: dict[str, str] = Field(
        default_factory=dict, description="every pair must be a label of the pod or its workload"
    )
    reason: str = Field(
        min_length=1, max_length=2000, description="why this behaviour is expected (kept with the entry)"
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 32:
            raise ValueError(f"{len(v)} labels: at most 32")
        return v


@router.get("/rules", response_model=Items[Rule], summary="The suspicious-execution rules: id, description, severity")
def rules(who: Principal = Depends(reader)) -> dict:
    return {"items": [r.as_dict() for r in RULES]}


@router.get(
    "/allow",
    response_model=Items[AllowEntry],
    summary="The allow-list: rule silenced per workload (by cluster, namespace, name or labels)",
)
def list_allow(request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": store.list_allow(conn)}


@router.post(
    "/allow",
    status_code=201,
    response_model=AllowEntry,
    summary="Silence a rule for matching workloads (admin)",
    openapi_extra=openapi_body(AllowEntryIn),
)
async def add_allow(request: Request, who: Principal = Depends(admin)) -> dict:
    body: AllowEntryIn = await parse_body(request, AllowEntryIn)
    try:
        check_allow_entry(body.rule, body.labels)
    except ValueError as exc:
        raise ApiError(
            422, "invalid_request", f"body.rule: {exc}" if "rule" in str(exc)[:6] else f"body.labels: {exc}"
        ) from None

    def work() -> dict:
        with request.app.state.engine.begin() as conn:
            return store.add_allow(
                conn,
                body.rule,
                body.cluster,
                body.namespace,
                body.workload,
                body.labels,
                body.reason,
                f"token:{who.name}",
            )

    return await run_in_threadpool(work)


@router.delete("/allow/{entry_id}", status_code=204, summary="Remove an allow-list entry (admin)")
def delete_allow(entry_id: RowId, request: Request, who: Principal = Depends(admin)) -> Response:
    with request.app.state.engine.begin() as conn:
        if not store.delete_allow(conn, entry_id):
            raise not_found(f"allow-list entry {entry_id} does not exist")
    return Response(status_code=204)


@router.get(
    "/status",
    response_model=RuntimeStatus,
    summary="Runtime analysis: records waiting (for the inventory, a scan) and the last pass",
)
def status(
    request: Request, who: Principal = Depends(reader), analyzer: RuntimeAnalyzer = Depends(runtime_analyzer)
) -> dict:
    with request.app.state.engine.connect() as conn:
        pending = store.pending_counts(conn)
    last = analyzer.last_report.as_dict() if analyzer.last_report else None
    return {"pending": pending, "last_pass": last}
