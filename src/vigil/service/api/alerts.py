"""Alert outputs and dead letters (admins only: outputs hold secrets and send data out of Vigil)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from vigil.service.analysis.alerts.destinations import DestinationRefused
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, alert_dispatcher
from vigil.service.api.errors import ApiError, not_found
from vigil.service.api.query import RowId, row_id_query
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.alerts.dispatcher import Dispatcher
from vigil.service.jobs.alerts.outputs import OUTPUTS
from vigil.service.jobs.alerts.outputs.listing import get_output_view, list_output_views
from vigil.service.store import alerts as store
from vigil.service.store.tokens import Principal
from vigil.wire.views import AlertOutput, CreatedAlertOutput, DeadLetterPage, Items, OutputKind, TestDelivery

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], route_class=ViewRoute)

EXAMPLE = {
    "name": "soc-webhook",
    "kind": "webhook",
    "url": "https://hooks.example.com/vigil",
    "threshold": "high",
    "events": ["opened", "escalated", "resolved"],
}


class _Kind(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str


def _one(request: Request, output_id: int) -> dict:
    with request.app.state.engine.connect() as conn:
        view = get_output_view(conn, output_id)
    if view is None:
        raise not_found(f"alert output {output_id} does not exist")
    return view


@router.get("/kinds", response_model=Items[OutputKind], summary="The output kinds this service can deliver to (admin)")
def list_kinds(who: Principal = Depends(admin)) -> dict:
    return {"items": [{"kind": k, "summary": cls.summary} for k, cls in OUTPUTS.items()]}


@router.get("/outputs", response_model=Items[AlertOutput], summary="Alert outputs, secrets masked (admin)")
def list_outputs(request: Request, who: Principal = Depends(admin)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": list_output_views(conn)}


@router.get("/outputs/{output_id}", response_model=AlertOutput, summary="One alert output, secrets masked (admin)")
def get_output(output_id: RowId, request: Request, who: Principal = Depends(admin)) -> dict:
    return _one(request, output_id)


@router.post(
    "/outputs",
    status_code=201,
    response_model=CreatedAlertOutput,
    summary="Add an alert output (admin); a generated webhook secret is shown once, in this answer",
    openapi_extra=openapi_body(OUTPUTS["webhook"].Request, EXAMPLE),
)
async def create_output(
    request: Request, who: Principal = Depends(admin), dispatcher: Dispatcher = Depends(alert_dispatcher)
) -> JSONResponse:
    kind = (await parse_body(request, _Kind)).kind
    cls = OUTPUTS.get(kind)
    if cls is None:
        detail = f"body.kind: {kind!r} is not one of {', '.join(OUTPUTS)}"
        raise ApiError(422, "invalid_request", detail)
    body = await parse_body(request, cls.Request)
    config, secrets, shown_once = cls.split(body)
    try:
        dispatcher.destinations.check_name(*cls.destination(config, secrets))
    except DestinationRefused as exc:
        raise ApiError(422, "invalid_request", f"body.{cls.destination_field}: {exc}") from None

    def work() -> dict:
        try:
            with request.app.state.engine.begin() as conn:
                o = store.create_output(
                    conn, name=body.name, kind=kind, threshold=body.threshold, events=body.events,
                    config=config, secrets=secrets, actor=f"token:{who.name}",
                )  # fmt: skip
        except (store.DuplicateOutput, IntegrityError):
            raise ApiError(409, "conflict", f"body.name: an alert output named {body.name!r} already exists") from None
        return _one(request, o.id)

    view = await run_in_threadpool(work)
    return JSONResponse({**view, **shown_once}, status_code=201)


@router.delete("/outputs/{output_id}", status_code=204, summary="Remove an alert output (admin); its dead letters stay")
def delete_output(output_id: RowId, request: Request, who: Principal = Depends(admin)) -> None:
    with request.app.state.engine.begin() as conn:
        if not store.delete_output(conn, output_id):
            raise not_found(f"alert output {output_id} does not exist")


@router.post(
    "/outputs/{output_id}/test",
    response_model=TestDelivery,
    summary="Send a test alert (event 'test', event_id 0) now, one attempt (admin)",
)
async def test_output(
    output_id: RowId,
    request: Request,
    who: Principal = Depends(admin),
    dispatcher: Dispatcher = Depends(alert_dispatcher),
) -> dict:
    with request.app.state.engine.connect() as conn:
        o = store.get_output(conn, output_id)
    if o is None:
        raise not_found(f"alert output {output_id} does not exist")
    outcome = await run_in_threadpool(dispatcher.send_test, o)
    if not outcome.delivered:
        raise ApiError(502, "delivery_failed", f"alert output {o.name!r}: {outcome.error}")
    return {"delivered": True, "output": o.name}


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Alerts that could not be delivered after every retry, newest first (admin)",
)
def list_dead_letters(
    request: Request,
    output: int | None = row_id_query("Only this output's id"),
    before: int | None = row_id_query("Page: the `next` of the previous answer"),
    limit: int = Query(100, ge=1, le=1000),
    who: Principal = Depends(admin),
) -> dict:
    with request.app.state.engine.connect() as conn:
        items, nxt = store.list_dead_letters(conn, output, before, limit)
    return {"items": items, "next": nxt}
