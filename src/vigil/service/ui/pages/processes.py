"""Processes (Runtime Impact): what executed, grouped by executable per image and workload; one
container's process view (what it executed, wrote, read of the watched paths, and its kernel
operations); the runtime rules, whose severities and allow-list admins change."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.model.findings import RATED_SEVERITIES
from vigil.service.analysis.runtime.rules import RULES_BY_ID, check_allow_entry
from vigil.service.store import runtime_analysis as runtime_store
from vigil.service.store.views import activities as activity_views
from vigil.service.store.views import findings as finding_views
from vigil.service.store.views import processes as process_views
from vigil.service.ui import params, web
from vigil.service.ui.cluster_filter import with_cluster_id

router = APIRouter()
log = logging.getLogger("vigil.console")
KINDS = ("executable", "script", "library")


def process_filter(q) -> process_views.ProcessFilter:
    """The processes list's filters, from its query parameters (the page and its CSV export)."""
    return process_views.ProcessFilter(
        cluster_id=params.text(q, "cluster"),
        namespace=params.text(q, "namespace"),
        kind=params.choice(q, "kind", KINDS),
        text=params.text(q, "q"),
        sha256=params.text(q, "sha256"),
        image_pk=params.integer(q, "image"),
        running_only=params.flag(q, "running"),
    )


def process_sort(q) -> tuple[str, bool]:
    return params.sort(q, process_views.PROCESS_SORTS, "-last_seen")


@router.get("/processes")
def processes(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    f = process_filter(q)
    sort, desc = process_sort(q)
    with request.app.state.engine.connect() as conn:
        f = with_cluster_id(conn, f)
        with params.cursor_checked():
            page = process_views.list_executables(conn, f, sort, desc, params.cursor(q), params.page_size(q))
        choices = finding_views.finding_filter_choices(conn)
    return web.render(
        request, "processes.html", v, page=page, f=f, sort=sort, desc=desc, clusters=choices["clusters"], KINDS=KINDS
    )


# -- one container: what it executed, wrote, read and asked of the kernel ---------------------------

MAX_SECTION_ROWS = 500  # per section; the API pages through the rest


@router.get("/processes/container")
def container_activity(request: Request, v: web.Viewer = Depends(web.viewer)):
    q = request.query_params
    cluster_id, container_id = params.text(q, "cluster"), params.text(q, "id", 160)
    if not cluster_id or not container_id:
        # No container named: the page asks for one (runtime findings link here with both set).
        with request.app.state.engine.connect() as conn:
            clusters = finding_views.finding_filter_choices(conn)["clusters"]
        return web.render(
            request,
            "container_activity.html",
            v,
            cluster_id=cluster_id,
            container_id=container_id,
            where=None,
            executed=[],
            sections=[],
            clusters=clusters,
            nav="processes",
        )
    with request.app.state.engine.connect() as conn:
        f = process_views.ProcessFilter(cluster_id=cluster_id, container_id=container_id)
        executed = process_views.list_execution_records(conn, f, None, MAX_SECTION_ROWS).items
        sections = []
        for key, title, kinds in activity_views.SECTIONS:
            af = activity_views.ActivityFilter(cluster_id=cluster_id, container_id=container_id, kinds=kinds)
            sections.append((key, title, activity_views.list_activities(conn, af, None, MAX_SECTION_ROWS).items))
    where = next((x for x in [*executed, *(i for _, _, items in sections for i in items)] if x["container"]), None)
    return web.render(
        request,
        "container_activity.html",
        v,
        cluster_id=cluster_id,
        container_id=container_id,
        where=where,
        executed=executed,
        sections=sections,
        clusters=[],
        nav="processes",
    )


# -- the runtime rules: severities and allow-lists, admins change them ------------------------------

HISTORY_SHOWN = 50


def _rules_page(request: Request, v: web.Viewer, error: str | None = None, status: int = 200, form=None):
    with request.app.state.engine.connect() as conn:
        rules = runtime_store.rule_views(conn)
        allow = runtime_store.list_allow(conn)
        history = runtime_store.rule_changes(conn, HISTORY_SHOWN)
    return web.render(
        request,
        "runtime_rules.html",
        v,
        status=status,
        rules=rules,
        allow=allow,
        history=history,
        error=error,
        form={k: str(form.get(k) or "") for k in ALLOW_FIELDS} if form is not None else {},
        RATED=RATED_SEVERITIES,
        nav="settings",
    )


ALLOW_FIELDS = ("rule", "cluster", "namespace", "workload", "labels", "reason")


@router.get("/settings/runtime-rules")
def runtime_rules(request: Request, v: web.Viewer = Depends(web.viewer)):
    return _rules_page(request, v)


@router.post("/settings/runtime-rules/{rule_id}/severity")
async def set_rule_severity(rule_id: str, request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    severity = str(form.get("severity") or "")
    if severity not in RATED_SEVERITIES:
        return _rules_page(request, v, f"severity: {severity!r} is not one of {', '.join(RATED_SEVERITIES)}", 400)
    if rule_id not in RULES_BY_ID:
        return _rules_page(request, v, f"rule {rule_id!r} is not one of {', '.join(RULES_BY_ID)}", 404)
    actor = f"console:{v.principal.name}"

    def work() -> None:
        with request.app.state.engine.begin() as conn:
            runtime_store.set_rule_severity(conn, rule_id, severity, actor)

    await run_in_threadpool(work)
    log.info("runtime rule severity set in console", extra={"rule": rule_id, "severity": severity})
    return web.redirect("/settings/runtime-rules#rules")


def _labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (the form's labels field) as a mapping; the message names the field."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, val = part.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"labels: {part!r} is not key=value (pairs are separated by commas)")
        out[k.strip()] = val.strip()
    if len(out) > MAX_LABELS:
        raise ValueError(f"labels: {len(out)} pairs, at most {MAX_LABELS}")
    return out


MAX_LABELS = 32
ALLOW_LIMITS = {"cluster": 253, "namespace": 63, "workload": 253, "labels": 4096, "reason": 2000}


@router.post("/settings/runtime-rules/allow")
async def add_allow(request: Request, v: web.Viewer = Depends(web.viewer)):
    form, _ = await web.checked_form(request)
    web.require_admin(v)
    fields = {k: str(form.get(k) or "").strip() for k in ALLOW_FIELDS}
    try:
        for k, limit in ALLOW_LIMITS.items():
            if len(fields[k]) > limit:
                raise ValueError(f"{k}: longer than {limit} characters")
        if not fields["reason"]:
            raise ValueError("reason: say why this behaviour is expected (kept with the entry)")
        labels = _labels(fields["labels"])
        check_allow_entry(fields["rule"], labels)
    except ValueError as exc:
        return _rules_page(request, v, str(exc) if ":" in str(exc)[:12] else f"rule: {exc}", 400, form)

    def work() -> dict:
        with request.app.state.engine.begin() as conn:
            return runtime_store.add_allow(
                conn,
                fields["rule"],
                fields["cluster"],
                fields["namespace"],
                fields["workload"],
                labels,
                fields["reason"],
                f"console:{v.principal.name}",
            )

    entry = await run_in_threadpool(work)
    log.info("runtime allow-list entry added in console", extra={"entry_id": entry["id"], "rule": entry["rule"]})
    return web.redirect("/settings/runtime-rules#allow")


@router.post("/settings/runtime-rules/allow/{entry_id}/remove")
async def remove_allow(entry_id: params.RowId, request: Request, v: web.Viewer = Depends(web.viewer)):
    await web.checked_form(request)
    web.require_admin(v)

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return runtime_store.delete_allow(conn, entry_id, f"console:{v.principal.name}")

    if not await run_in_threadpool(work):
        return _rules_page(request, v, f"allow-list entry {entry_id} does not exist", 404)
    log.info("runtime allow-list entry removed in console", extra={"entry_id": entry_id})
    return web.redirect("/settings/runtime-rules#allow")
