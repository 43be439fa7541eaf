"""Cluster registration and the cluster list."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, enroller, enrolment_issuer, own_cluster, reader, registrant
from vigil.service.api.errors import ApiError, forbidden, not_found, unauthorized
from vigil.service.api.query import cluster_path
from vigil.service.api.responses import ViewRoute
from vigil.service.store.clusters import CLUSTER_NAME, cluster_for_registration
from vigil.service.store.credentials import (
    DEFAULT_OVERLAP,
    RegistrationRefused,
    enrol_sensor,
    issue_admission,
    issue_enrolment,
    list_credentials,
    register_with_token,
    revoke_credential,
    rotate_credentials,
)
from vigil.service.store.pagination import DEFAULT_LIMIT, MAX_LIMIT
from vigil.service.store.tokens import Principal, issue_token
from vigil.service.store.views import clusters as cluster_views
from vigil.wire.views import (
    AdmissionCredential,
    Cluster,
    CredentialInfo,
    EnrolledSensor,
    IssuedRegistrationToken,
    Items,
    Page,
    Registration,
    RotatedCredential,
    SensorEnrolment,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/clusters", tags=["clusters"], route_class=ViewRoute)


class RegistrationTokenRequest(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(default="registration", min_length=1, max_length=128)
    ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    max_uses: int | None = Field(default=None, ge=1)
    cluster_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=CLUSTER_NAME,
        description="make this cluster now (pending until its controller reports) and bind the token to it",
    )


class RotateRequest(BaseModel):
    model_config = {"extra": "forbid"}
    overlap_seconds: int = Field(
        default=int(DEFAULT_OVERLAP.total_seconds()),
        ge=0,
        le=86400,
        description="how long the cluster's earlier credentials keep working, so its controller and sensors roll over",
    )


class SensorEnrolRequest(BaseModel):
    model_config = {"extra": "forbid"}
    # The node name as runtime batches and heartbeats carry it (a DNS subdomain, as wire models check it).
    node: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")


class RegisterRequest(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=253, pattern=CLUSTER_NAME)


@router.post(
    "/registration-tokens",
    status_code=201,
    response_model=IssuedRegistrationToken,
    summary="Create a registration token for controllers (admin)",
    openapi_extra=openapi_body(RegistrationTokenRequest),
)
async def create_registration_token(request: Request, who: Principal = Depends(admin)) -> dict:
    body: RegistrationTokenRequest = await parse_body(request, RegistrationTokenRequest)

    ttl = timedelta(seconds=body.ttl_seconds)

    def work():
        with request.app.state.engine.begin() as conn:
            if body.cluster_name is not None:
                named = body.name if "name" in body.model_fields_set else None
                return cluster_for_registration(conn, body.cluster_name, ttl, body.max_uses, named)
            return None, issue_token(conn, role="registration", name=body.name, ttl=ttl, max_uses=body.max_uses)

    cluster_id, tok = await run_in_threadpool(work)
    return {
        "id": tok.id,
        "token": tok.secret,
        "expires_at": tok.expires_at.isoformat(),
        "max_uses": body.max_uses,
        "cluster_id": cluster_id,
        "cluster_name": body.cluster_name,
    }


@router.post(
    "/register",
    response_model=Registration,
    summary="Register a cluster with a registration token; returns its id and a credential scoped to it",
    openapi_extra=openapi_body(RegisterRequest, {"name": "prod-eu-1"}),
)
async def register(request: Request, who: Principal = Depends(registrant)) -> dict:
    body: RegisterRequest = await parse_body(request, RegisterRequest)

    def work():
        with request.app.state.engine.begin() as conn:
            try:
                return register_with_token(conn, who, body.name)
            except RegistrationRefused as exc:
                if exc.status == 401:
                    raise unauthorized(str(exc)) from None
                if exc.status == 403:
                    raise forbidden(str(exc)) from None
                raise ApiError(exc.status, "conflict", str(exc)) from None

    cluster_id, cred = await run_in_threadpool(work)
    return {"cluster_id": cluster_id, "name": body.name, "credential": cred.secret}


@router.get("", response_model=Page[Cluster], summary="Clusters with controller status and counts")
def list_clusters(
    request: Request,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    after: str | None = Query(None, description="cursor from the previous page's `next`"),
    who: Principal = Depends(reader),
) -> dict:
    with request.app.state.engine.connect() as conn:
        p = cluster_views.list_clusters(conn, after, limit)
    return {"items": p.items, "next": p.next}


@router.get("/{cluster_id}", response_model=Cluster, summary="One cluster")
def get_cluster(request: Request, cluster_id: str = Depends(cluster_path), who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        # Clusters are few; filter the listing rather than keep a second query shape.
        after = None
        while True:
            p = cluster_views.list_clusters(conn, after, 1000)
            for c in p.items:
                if c["id"] == cluster_id:
                    return c
            if p.next is None:
                break
            after = p.next
    raise not_found(f"cluster {cluster_id!r} is not registered")


@router.get(
    "/{cluster_id}/credentials",
    response_model=Items[CredentialInfo],
    summary="A cluster's credentials, never their secrets (admin)",
)
def get_credentials(request: Request, cluster_id: str = Depends(cluster_path), who: Principal = Depends(admin)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": list_credentials(conn, cluster_id)}


@router.post(
    "/{cluster_id}/credentials/rotate",
    response_model=RotatedCredential,
    summary="A new credential for the cluster; the earlier ones work for a short overlap, then are refused (admin)",
    openapi_extra=openapi_body(RotateRequest, {"overlap_seconds": 600}),
)
async def rotate(request: Request, cluster_id: str = Depends(cluster_path), who: Principal = Depends(admin)) -> dict:
    body: RotateRequest = await parse_body(request, RotateRequest)
    overlap = timedelta(seconds=body.overlap_seconds)

    def work():
        with request.app.state.engine.begin() as conn:
            return rotate_credentials(conn, cluster_id, overlap)

    cred, until = await run_in_threadpool(work)
    return {"cluster_id": cluster_id, "id": cred.id, "credential": cred.secret, "previous_valid_until": until}


@router.post(
    "/{cluster_id}/credentials/{credential_id}/revoke",
    response_model=CredentialInfo,
    summary="Revoke one of the cluster's credentials now (admin)",
)
def revoke(
    credential_id: str, request: Request, cluster_id: str = Depends(cluster_path), who: Principal = Depends(admin)
) -> dict:
    with request.app.state.engine.begin() as conn:
        if not revoke_credential(conn, cluster_id, credential_id):
            raise not_found(f"cluster {cluster_id!r} has no live credential {credential_id!r}")
        return next(c for c in list_credentials(conn, cluster_id) if c["id"] == credential_id)


async def _issue(request: Request, cluster_id: str, who: Principal, issue) -> dict:
    own_cluster(who, cluster_id)
    body: RotateRequest = await parse_body(request, RotateRequest)
    overlap = timedelta(seconds=body.overlap_seconds)

    def work():
        with request.app.state.engine.begin() as conn:
            try:
                return issue(conn, cluster_id, overlap)
            except LookupError as exc:
                raise not_found(str(exc)) from None

    cred, until = await run_in_threadpool(work)
    return {"cluster_id": cluster_id, "id": cred.id, "credential": cred.secret, "previous_valid_until": until}


@router.post(
    "/{cluster_id}/sensor-enrolment",
    response_model=SensorEnrolment,
    summary="A new enrolment credential for the cluster's sensors; the earlier ones work for a short overlap "
    "(admin, or the cluster's own credential)",
    openapi_extra=openapi_body(RotateRequest, {"overlap_seconds": 600}),
)
async def sensor_enrolment(cluster_id: str, request: Request, who: Principal = Depends(enrolment_issuer)) -> dict:
    return await _issue(request, cluster_id, who, issue_enrolment)


@router.post(
    "/{cluster_id}/admission-credential",
    response_model=AdmissionCredential,
    summary="A new credential for the cluster's admission webhooks (its feed and its decisions only); the earlier "
    "ones work for a short overlap (admin, or the cluster's own credential)",
    openapi_extra=openapi_body(RotateRequest, {"overlap_seconds": 600}),
)
async def admission_credential(cluster_id: str, request: Request, who: Principal = Depends(enrolment_issuer)) -> dict:
    return await _issue(request, cluster_id, who, issue_admission)


@router.post(
    "/{cluster_id}/sensors",
    response_model=EnrolledSensor,
    summary="Enrol a node's sensor with the cluster's enrolment credential: a credential for that node's runtime "
    "records and heartbeats only; re-enrolling a node replaces its earlier one after a short overlap",
    openapi_extra=openapi_body(SensorEnrolRequest, {"node": "worker-1"}),
)
async def enrol(cluster_id: str, request: Request, who: Principal = Depends(enroller)) -> dict:
    own_cluster(who, cluster_id)
    body: SensorEnrolRequest = await parse_body(request, SensorEnrolRequest)

    def work():
        with request.app.state.engine.begin() as conn:
            return enrol_sensor(conn, cluster_id, body.node)

    cred, until = await run_in_threadpool(work)
    log.info("sensor enrolled", extra={"cluster_id": cluster_id, "node": body.node, "credential_id": cred.id})
    return {
        "cluster_id": cluster_id,
        "node": body.node,
        "id": cred.id,
        "credential": cred.secret,
        "previous_valid_until": until,
    }
