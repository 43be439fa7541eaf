"""The enforcement policy: read, replace and list its history (admins only: it decides what is refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from vigil.policy.enforcement import EnforcementPolicy, EnforcementPolicyError, PolicyEntry, parse_enforcement
from vigil.policy.prevention import unreachable_runtime_rules
from vigil.service.api.admission import policy_changed
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin
from vigil.service.api.errors import ApiError
from vigil.service.api.prevention import runtime_policy_changed
from vigil.service.api.responses import ViewRoute
from vigil.service.store.enforcement import (
    StoredEnforcement,
    enforcement_history,
    load_enforcement,
    replace_enforcement,
)
from vigil.service.store.tokens import Principal

router = APIRouter(prefix="/api/v1/policy", tags=["policy"], route_class=ViewRoute)
MAX_HISTORY = 500

EXAMPLE = {
    "exempt_namespaces": ["kube-system", "kube-public", "kube-node-lease", "vigil"],
    "break_glass_annotation": "vigil.dev/break-glass",
    "policies": [
        {
            "name": "prod-trusted-only",
            "mode": "enforce",
            "failure": "ignore",
            "scope": {"clusters": ["prod-eu"], "namespace_selector": {"matchLabels": {"env": "prod"}}},
            "rules": {"untrusted_registry": True, "integrity": True, "unscanned": "warn"},
        }
    ],
}


class EnforcementDocument(BaseModel):
    """The enforcement policy in force, with its revision (a hash of the document) and who stored it
    (``updated_at`` null: none was ever stored, and this default enforces nothing)."""

    model_config = ConfigDict(extra="forbid")
    exempt_namespaces: list[str]
    break_glass_annotation: str
    policies: list[PolicyEntry]
    revision: str
    updated_at: datetime | None
    updated_by: str | None
    # What in the policy takes no effect where its author may expect it to (stored all the same).
    warnings: list[str]


class EnforcementRevision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: str
    updated_at: datetime | None
    updated_by: str | None
    policy: EnforcementPolicy


class EnforcementHistory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[EnforcementRevision]


def document(stored: StoredEnforcement) -> dict:
    return {
        **stored.policy.model_dump(mode="json"),
        "revision": stored.revision,
        "updated_at": stored.updated_at,
        "updated_by": stored.updated_by,
        "warnings": unreachable_runtime_rules(stored.policy),
    }


@router.get(
    "/enforcement",
    response_model=EnforcementDocument,
    summary="The enforcement policy: what admission refuses, warns about or records (admin)",
)
def get_enforcement(request: Request, who: Principal = Depends(admin)) -> dict:
    with request.app.state.engine.connect() as conn:
        return document(load_enforcement(conn))


async def _policy_body(request: Request) -> EnforcementPolicy:
    """The body as an enforcement policy; a 422 whose detail is the policy library's own message."""
    data = await parse_body(request, dict[str, Any])
    try:
        return parse_enforcement(data, "request body")
    except EnforcementPolicyError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None


@router.put(
    "/enforcement",
    response_model=EnforcementDocument,
    summary="Replace the enforcement policy (admin); admission webhooks get it within a second",
    openapi_extra=openapi_body(EnforcementPolicy, EXAMPLE),
)
async def put_enforcement(request: Request, who: Principal = Depends(admin)) -> dict:
    policy = await _policy_body(request)

    def work() -> StoredEnforcement:
        with request.app.state.engine.begin() as conn:
            return replace_enforcement(conn, policy, actor=f"token:{who.name}")

    stored = await run_in_threadpool(work)
    policy_changed(request.app)
    runtime_policy_changed(request.app)  # and the sensors enforcing its runtime rules
    return document(stored)


@router.get(
    "/enforcement/history",
    response_model=EnforcementHistory,
    summary="The stored enforcement policies, newest first (admin)",
)
def get_enforcement_history(
    request: Request,
    limit: int = Query(50, ge=1, le=MAX_HISTORY),
    who: Principal = Depends(admin),
) -> dict:
    with request.app.state.engine.connect() as conn:
        history = enforcement_history(conn, limit)
    return {
        "items": [
            {"revision": s.revision, "updated_at": s.updated_at, "updated_by": s.updated_by, "policy": s.policy}
            for s in history
        ]
    }
