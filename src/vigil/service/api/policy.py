"""The trust policy: read and replace it (admins only: it decides what counts as a violation)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from vigil.policy.trust_doc import PolicyDoc
from vigil.service.api.admission import policy_changed
from vigil.service.api.body import openapi_body, parse_body
from vigil.service.api.deps import admin
from vigil.service.api.responses import ViewRoute
from vigil.service.store.policy import load_policy, replace_policy
from vigil.service.store.tokens import Principal
from vigil.wire.views import TrustPolicy

router = APIRouter(prefix="/api/v1/policy", tags=["policy"], route_class=ViewRoute)

EXAMPLE = {
    "trusted": ["registry.example.com/team"],
    "mirrors": [{"source": "docker.io", "mirror": "artifactory.example.com/docker-remote"}],
    "clusters": {"prod-eu": {"trusted": ["registry.example.com/prod"], "mirrors": []}},
}


def _document(request: Request) -> dict:
    with request.app.state.engine.connect() as conn:
        policy = load_policy(conn)
    return {**PolicyDoc.from_policy(policy).model_dump(), "revision": policy.revision}


@router.get(
    "/trust", response_model=TrustPolicy, summary="The trust policy: trusted registry patterns and mirror rules (admin)"
)
def get_trust(request: Request, who: Principal = Depends(admin)) -> dict:
    return _document(request)


@router.put(
    "/trust",
    response_model=TrustPolicy,
    summary="Replace the trust policy (admin); running images are re-evaluated under it",
    openapi_extra=openapi_body(PolicyDoc, EXAMPLE),
)
async def put_trust(request: Request, who: Principal = Depends(admin)) -> dict:
    doc: PolicyDoc = await parse_body(request, PolicyDoc)
    policy = doc.to_policy()

    def work() -> dict:
        with request.app.state.engine.begin() as conn:
            replace_policy(conn, policy, actor=f"token:{who.name}")
        return _document(request)

    answer = await run_in_threadpool(work)
    policy_changed(request.app)  # admission webhooks decide under the new trust policy within a second
    return answer
