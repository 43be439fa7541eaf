"""HTTP: the runtime rule table (admins set a rule's severity), its allow-list (admins change it), the
history of both, the activities of containers (file accesses, kernel operations), the analyzer's status."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from vigil.service.analysis.runtime.rules import check_allow_entry
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, reader, runtime_analyzer
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, cluster_query
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.runtime import RuntimeAnalyzer
from vigil.service.store import runtime_analysis as store
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.tokens import Principal
from vigil.service.store.views import activities as activity_views
from vigil.wire.views import Activity, AllowEntry, Items, Page, Rule, RuleChange, RuntimeStatus

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


# The rated levels (model.findings.RATED_SEVERITIES): a rule's finding is never info or unknown.
RatedSeverity = Literal["critical", "high", "medium", "low"]


class RuleSeverityIn(BaseModel):
    model_config = {"extra": "forbid"}
    severity: RatedSeverity = Field(description="the severity the rule's findings take from now on")


@router.get(
    "/rules",
    response_model=Items[Rule],
    summary="The runtime rules: id, description, severity, MITRE ATT&CK technique, finding type, kinds judged",
)
def rules(request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": store.rule_views(conn)}


@router.get(
    "/rules/history",
    response_model=Items[RuleChange],
    summary="Changes of rule severities and allow-lists, newest first",
)
def rule_history(
    request: Request,
    rule: str | None = Query(None, max_length=64, description="one rule's changes"),
    limit: int = Query(100, ge=1, le=1000),
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": store.rule_changes(conn, limit, rule)}


def change_severity(engine, rule_id: str, severity: str, actor: str) -> dict:
    with engine.begin() as conn:
        try:
            return store.set_rule_severity(conn, rule_id, severity, actor)
        except store.UnknownRule as exc:
            raise not_found(str(exc)) from None


@router.put(
    "/rules/{rule_id}",
    response_model=Rule,
    summary="Set a rule's severity (admin); findings it opens or refreshes from now on take it",
    openapi_extra=openapi_body(RuleSeverityIn),
)
async def set_rule_severity(rule_id: str, request: Request, who: Principal = Depends(admin)) -> dict:
    body: RuleSeverityIn = await parse_body(request, RuleSeverityIn)
    return await run_in_threadpool(
        change_severity, request.app.state.engine, rule_id, body.severity, f"token:{who.name}"
    )


@router.get(
    "/activities",
    response_model=Page[Activity],
    summary="What containers did besides executing: file accesses on watched paths and kernel operations",
)
def activities(
    request: Request,
    cluster: str | None = Depends(cluster_query),
    node: str | None = Query(None, max_length=253),
    container_id: str | None = Query(None, max_length=160),
    pod_uid: str | None = Query(None, max_length=64),
    namespace: str | None = Query(None, max_length=63),
    workload_kind: str | None = Query(None, max_length=63),
    workload: str | None = Query(None, max_length=253, description="workload name"),
    kind: str | None = Query(None, description="an activity kind: " + ", ".join(activity_views.KINDS)),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size"),
    after: str | None = Query(None, description="cursor from the previous page's `next`"),
    who: Principal = Depends(reader),
) -> dict:
    if kind is not None and kind not in activity_views.KINDS:
        raise ApiError(422, "invalid_request", f"query.kind: {kind!r} is not one of {', '.join(activity_views.KINDS)}")
    f = activity_views.ActivityFilter(
        cluster_id=cluster,
        node=node,
        container_id=container_id,
        pod_uid=pod_uid,
        namespace=namespace,
        workload_kind=workload_kind,
        workload_name=workload,
        kinds=(kind,) if kind else (),
    )
    with request.app.state.engine.connect() as conn:
        p = activity_views.list_activities(conn, f, after, limit)
    return {"items": p.items, "next": p.next}


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
        if not store.delete_allow(conn, entry_id, f"token:{who.name}"):
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
        pending_activities = store.pending_counts(conn, activities=True)
    last = analyzer.last_report.as_dict() if analyzer.last_report else None
    return {"pending": pending, "pending_activities": pending_activities, "last_pass": last}
