"""Runtime prevention: the deny list (admins change it, viewers read it), each node's runtime policy for its
sensor (a long poll), and the enforcement state of every node.

A sensor asks ``GET RUNTIME_POLICY_PATH?node=&revision=&wait=`` with the revision it holds: the answer comes at
once when the node's policy has another revision, else when it changes or after ``wait`` seconds. A change made
through this process (the enforcement policy, the deny list, an inventory batch) wakes the waiting requests at
once; every waiting request also compares a cheap marker of what the policy is computed from (the policy's and
the deny list's latest rows, the cluster's last inventory change) each ``RECHECK_SECONDS`` and computes the
node's policy again only when it moved, so a change made by another replica or the CLI arrives as soon.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from vigil.service.api.admission import PolicyChanges
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin, reader, sensor_writer
from vigil.service.api.errors import ApiError, forbidden, not_found
from vigil.service.api.query import cluster_query
from vigil.service.api.responses import ViewRoute, error_response
from vigil.service.store import prevention as store
from vigil.service.store.tokens import Principal
from vigil.wire.base import DNS_SUBDOMAIN
from vigil.wire.prevention import MAX_POLICY_WAIT_SECONDS, RUNTIME_POLICY_PATH, NodeRuntimePolicy

log = logging.getLogger(__name__)
router = APIRouter(tags=["prevention"], route_class=ViewRoute)
RECHECK_SECONDS = 0.5
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


# -- change notification ---------------------------------------------------------------------------------


def _changes(app: FastAPI) -> PolicyChanges:
    changes = getattr(app.state, "runtime_policy_changes", None)
    if changes is None:
        changes = app.state.runtime_policy_changes = PolicyChanges()
    return changes


def runtime_policy_changed(app: FastAPI) -> None:
    """Wake this process's waiting sensors: the enforcement policy, the deny list or the inventory changed."""
    _changes(app).notify()


# -- the deny list ------------------------------------------------------------------------------------------


def _sha256(v: str) -> str:
    if not _SHA256.match(v):
        raise ValueError(f"{v[:80]!r} is not a file sha256 (64 lowercase hex digits)")
    return v


class DenyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(max_length=64)
    reason: str = Field(min_length=1, max_length=store.MAX_REASON)

    @field_validator("sha256")
    @classmethod
    def _digest(cls, v: str) -> str:
        return _sha256(v)

    @field_validator("reason")
    @classmethod
    def _said(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must say why the file is denied")
        return v.strip()


class DenyEntryView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    reason: str
    added_by: str
    added_at: datetime


class DenyList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[DenyEntryView]


class DenyChangeView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    change: str
    reason: str
    at: datetime
    by: str


class DenyHistory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[DenyChangeView]


class DenyRemoved(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    removed: bool


@router.get(
    "/api/v1/policy/deny-list",
    response_model=DenyList,
    summary="The sha256s whose exec the deny_listed prevention rule stops, newest first (viewer)",
)
def get_deny_list(request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": [e.__dict__ for e in store.deny_entries(conn)]}


@router.post(
    "/api/v1/policy/deny-list",
    response_model=DenyEntryView,
    status_code=201,
    summary="Put a sha256 on the deny list (admin); sensors get it within 2 s",
    openapi_extra=openapi_body(DenyRequest, {"sha256": "a" * 64, "reason": "cryptominer seen in incident 42"}),
    responses={409: error_response("The sha256 is already on the deny list")},
)
async def add_deny(request: Request, who: Principal = Depends(admin)) -> dict:
    body: DenyRequest = await parse_body(request, DenyRequest)

    def work() -> store.DenyEntry | None:
        with request.app.state.engine.begin() as conn:
            return store.add_denied(conn, body.sha256, body.reason, f"token:{who.name}")

    try:
        entry = await run_in_threadpool(work)
    except store.DenyListFull as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if entry is None:
        raise ApiError(409, "conflict", f"sha256 {body.sha256} is already on the deny list")
    runtime_policy_changed(request.app)
    return entry.__dict__


@router.delete(
    "/api/v1/policy/deny-list/{sha256}",
    response_model=DenyRemoved,
    summary="Take a sha256 off the deny list (admin)",
)
async def remove_deny(sha256: str, request: Request, who: Principal = Depends(admin)) -> dict:
    if not _SHA256.match(sha256):
        raise ApiError(422, "invalid_request", f"path.sha256: {sha256[:80]!r} is not a file sha256 (64 lowercase hex)")

    def work() -> bool:
        with request.app.state.engine.begin() as conn:
            return store.remove_denied(conn, sha256, f"token:{who.name}")

    if not await run_in_threadpool(work):
        raise not_found(f"sha256 {sha256} is not on the deny list")
    runtime_policy_changed(request.app)
    return {"sha256": sha256, "removed": True}


@router.get(
    "/api/v1/policy/deny-list/history",
    response_model=DenyHistory,
    summary="Every addition to and removal from the deny list, newest first (viewer)",
)
def get_deny_history(
    request: Request, limit: int = Query(50, ge=1, le=store.MAX_HISTORY), who: Principal = Depends(reader)
) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": [c.__dict__ for c in store.deny_history(conn, limit)]}


# -- distribution to sensors -----------------------------------------------------------------------------


def _node_for(who: Principal, node: str) -> str:
    if not DNS_SUBDOMAIN.match(node):
        raise ApiError(422, "invalid_request", f"query.node: {node[:80]!r} is not a node name (DNS subdomain)")
    if who.role == "sensor" and who.node_name != node:
        raise forbidden(
            f"this sensor credential is scoped to node {who.node_name}; it cannot read node {node}'s runtime policy"
        )
    return node


@router.get(
    RUNTIME_POLICY_PATH,
    response_model=NodeRuntimePolicy,
    summary="The runtime policy the node's sensor enforces; held until it differs from `revision` or `wait` "
    "seconds pass (sensor credential of that node)",
)
async def runtime_policy(
    request: Request,
    node: str = Query(min_length=1, max_length=253, description="The node's name"),
    revision: str = Query("", max_length=64, description="The revision the sensor holds; empty: none"),
    wait: float = Query(0, ge=0, le=MAX_POLICY_WAIT_SECONDS, description="Seconds to hold the request"),
    who: Principal = Depends(sensor_writer),
) -> NodeRuntimePolicy:
    node = _node_for(who, node)
    cluster_id = who.cluster_id or ""
    engine = request.app.state.engine
    changes = _changes(request.app)

    def marker() -> tuple:
        with engine.connect() as conn:
            return store.change_marker(conn, cluster_id)

    def compute() -> tuple[tuple, NodeRuntimePolicy]:
        # The marker first: a change landing in between is in the policy and changes the next marker,
        # which costs one more computation, never a missed change.
        with engine.connect() as conn:
            return store.change_marker(conn, cluster_id), store.compute_node_policy(conn, cluster_id, node)

    deadline = time.monotonic() + wait
    seen, current = await run_in_threadpool(compute)
    while current.revision == revision:
        left = deadline - time.monotonic()
        if left <= 0 or await request.is_disconnected():
            break
        await changes.wait(min(left, RECHECK_SECONDS))
        if await run_in_threadpool(marker) != seen:
            seen, current = await run_in_threadpool(compute)
    return current


# -- the nodes' enforcement state -------------------------------------------------------------------------


class NodeEnforcementView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster_id: str
    node_name: str
    state: str = Field(description="enforcing | lagging | off")
    current_revision: str
    sensor_revision: str | None
    containers_in_scope: int
    loud: bool = Field(description="Prevention fails open on this node while it has containers in scope")
    reason: str


class NodeEnforcementList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[NodeEnforcementView]


def enforcement_view(n: store.NodeEnforcement) -> dict:
    return {
        "cluster_id": n.cluster_id,
        "node_name": n.node_name,
        "state": n.state,
        "current_revision": n.current_revision,
        "sensor_revision": n.sensor_revision,
        "containers_in_scope": n.in_scope,
        "loud": n.loud,
        "reason": n.reason,
    }


@router.get(
    "/api/v1/policy/runtime/nodes",
    response_model=NodeEnforcementList,
    summary="Per node: enforcing the current runtime policy revision, lagging behind it, or enforcement off (viewer)",
)
def get_node_enforcement(request: Request, cluster: str | None = Depends(cluster_query)) -> dict:
    with request.app.state.engine.connect() as conn:
        return {"items": [enforcement_view(n) for n in store.node_enforcement(conn, cluster)]}
